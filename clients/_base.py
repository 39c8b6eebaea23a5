"""What the sync and asyncio clients share: settings, channel construction and bound calls."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf.message import Message

from clients._operations import Operation
from clients.retry import RetryPolicy

DEFAULT_MAX_MESSAGE_BYTES = 512 * 1024 * 1024


def build_channel_options(max_message_bytes: int, extra: Sequence[tuple[str, Any]] = ()) -> list[tuple[str, Any]]:
    """Channel arguments: raised send/receive limits, then ``extra`` (which wins on a repeated key)."""
    if max_message_bytes <= 0:
        raise ValueError(f"max_message_bytes must be > 0, got {max_message_bytes}")
    options: dict[str, Any] = {
        "grpc.max_send_message_length": max_message_bytes,
        "grpc.max_receive_message_length": max_message_bytes,
    }
    options.update(dict(extra))
    return list(options.items())


def channel_credentials(
    tls: bool,
    root_certificates: bytes | None,
    private_key: bytes | None,
    certificate_chain: bytes | None,
) -> grpc.ChannelCredentials | None:
    """TLS credentials, or None for a plaintext channel; PEM material without ``tls`` is an error."""
    if not tls:
        if root_certificates is not None or private_key is not None or certificate_chain is not None:
            raise ValueError("certificates or a private key were given but tls=False")
        return None
    return grpc.ssl_channel_credentials(
        root_certificates=root_certificates, private_key=private_key, certificate_chain=certificate_chain
    )


def _serialize(message: Message) -> bytes:
    return message.SerializeToString()


class ClientBase:
    """Settings and channel of a client; subclasses choose ``grpc`` or ``grpc.aio`` and how to wait.

    Args:
        url: ``host:port`` of the server.
        tls: use a TLS channel; ``root_certificates``, ``private_key`` and ``certificate_chain``
            are PEM bytes passed to ``grpc.ssl_channel_credentials`` (None: the system roots, no client cert).
        retry: when and how often to retry calls that fail with UNAVAILABLE (default ``RetryPolicy()``).
        timeout: default deadline in seconds for each attempt of a call; None for none.
        max_message_bytes: send and receive message limit on the channel.
        channel_options: extra gRPC channel arguments; they override the message limits.
        admin_token: the server's admin token, sent as ``authorization: Bearer <token>`` with
            :meth:`load_model` and :meth:`unload_model` only (None: send none).
    """

    #: The module that makes channels: ``grpc`` or ``grpc.aio``.
    _channel_module: ClassVar[Any]

    def __init__(
        self,
        url: str = "localhost:8001",
        *,
        tls: bool = False,
        root_certificates: bytes | None = None,
        private_key: bytes | None = None,
        certificate_chain: bytes | None = None,
        retry: RetryPolicy | None = None,
        timeout: float | None = 60.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        channel_options: Sequence[tuple[str, Any]] = (),
        admin_token: str | None = None,
    ) -> None:
        self._retry = RetryPolicy() if retry is None else retry
        self._admin_metadata: tuple[tuple[str, str], ...] = (
            () if admin_token is None else (("authorization", f"Bearer {admin_token}"),)
        )
        self._timeout = timeout
        options = build_channel_options(max_message_bytes, channel_options)
        credentials = channel_credentials(tls, root_certificates, private_key, certificate_chain)
        if credentials is None:
            self._channel = self._channel_module.insecure_channel(url, options=options)
        else:
            self._channel = self._channel_module.secure_channel(url, credentials, options=options)
        self._callables: dict[str, Any] = {}

    @property
    def retry_policy(self) -> RetryPolicy:
        """The policy used for every call of this client."""
        return self._retry

    def _bind(self, operation: Operation[Any, Any], timeout: float | None) -> Callable[[], Any]:
        """A no-argument function making one attempt of ``operation`` (timeout None: the client default)."""
        multicallable = self._callables.get(operation.method)
        if multicallable is None:
            multicallable = self._channel.unary_unary(
                operation.path,
                request_serializer=_serialize,
                response_deserializer=operation.response_type.FromString,
            )
            self._callables[operation.method] = multicallable
        seconds = self._timeout if timeout is None else timeout
        request = operation.request
        if operation.admin and self._admin_metadata:
            metadata = self._admin_metadata
            return lambda: multicallable(request, timeout=seconds, metadata=metadata)
        return lambda: multicallable(request, timeout=seconds)
