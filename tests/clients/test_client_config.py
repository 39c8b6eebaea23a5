"""Client construction: channel arguments, TLS settings and lifecycle (no server needed)."""

from __future__ import annotations

import pytest

from clients import AsyncInferenceClient, InferenceClient, RetryPolicy
from clients._base import DEFAULT_MAX_MESSAGE_BYTES, build_channel_options, channel_credentials


def test_message_limits_are_raised_on_both_directions() -> None:
    assert build_channel_options(DEFAULT_MAX_MESSAGE_BYTES) == [
        ("grpc.max_send_message_length", 512 * 1024 * 1024),
        ("grpc.max_receive_message_length", 512 * 1024 * 1024),
    ]


def test_extra_channel_options_are_appended_and_override() -> None:
    options = build_channel_options(1024, [("grpc.keepalive_time_ms", 10_000), ("grpc.max_send_message_length", 7)])
    assert options == [
        ("grpc.max_send_message_length", 7),
        ("grpc.max_receive_message_length", 1024),
        ("grpc.keepalive_time_ms", 10_000),
    ]


def test_non_positive_message_limit_is_rejected() -> None:
    with pytest.raises(ValueError, match="max_message_bytes"):
        build_channel_options(0)


def test_plaintext_has_no_credentials() -> None:
    assert channel_credentials(False, None, None, None) is None


def test_certificates_without_tls_are_rejected() -> None:
    with pytest.raises(ValueError, match="tls=False"):
        channel_credentials(False, b"pem", None, None)
    with pytest.raises(ValueError, match="tls=False"):
        InferenceClient("localhost:1", root_certificates=b"pem")


def test_tls_builds_channel_credentials() -> None:
    assert channel_credentials(True, None, None, None) is not None


def test_sync_client_is_a_context_manager() -> None:
    policy = RetryPolicy(max_attempts=1)
    with InferenceClient("127.0.0.1:1", tls=True, retry=policy, timeout=None) as client:
        assert client.retry_policy is policy
    client.close()  # closing twice is harmless


def test_default_retry_policy() -> None:
    with InferenceClient() as client:
        assert client.retry_policy == RetryPolicy()


async def test_async_client_is_an_async_context_manager() -> None:
    async with AsyncInferenceClient("127.0.0.1:1", channel_options=[("grpc.enable_retries", 0)]) as client:
        assert client.retry_policy == RetryPolicy()
