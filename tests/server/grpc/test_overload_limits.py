"""CallLimits: the counters behind RESOURCE_EXHAUSTED for too many calls or too many request bytes."""

from __future__ import annotations

import pytest

from server.errors import ResourceExhaustedError
from server.grpc.overload import CallLimits


def test_calls_past_the_limit_are_refused_and_released_calls_make_room() -> None:
    limits = CallLimits(max_calls=2, max_bytes=100)
    limits.admit(10)
    limits.admit(0)
    with pytest.raises(ResourceExhaustedError, match="handling 2 inference calls"):
        limits.admit(0)
    limits.release(10)
    limits.admit(0)
    assert (limits.calls, limits.held_bytes) == (2, 0)


def test_bytes_past_the_limit_are_refused_before_they_are_counted() -> None:
    limits = CallLimits(max_calls=10, max_bytes=100)
    limits.admit(60)
    with pytest.raises(ResourceExhaustedError, match="holding 60 bytes of requests"):
        limits.admit(41)
    limits.admit(40)
    assert (limits.calls, limits.held_bytes) == (2, 100)


def test_streamed_requests_share_the_byte_bound_without_counting_as_calls() -> None:
    limits = CallLimits(max_calls=1, max_bytes=100)
    limits.admit(0)  # the stream itself: one call, no bytes
    limits.admit_bytes(70)
    with pytest.raises(ResourceExhaustedError, match="holding 70 bytes of requests"):
        limits.admit_bytes(31)
    with pytest.raises(ResourceExhaustedError, match="handling 1 inference calls"):
        limits.admit(10)  # a unary call meets both bounds
    limits.release_bytes(70)
    limits.admit_bytes(100)
    assert (limits.calls, limits.held_bytes) == (1, 100)
