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


class Counters:
    """Stands in for the native server's shared counters (pure logic: the real ones are tested in tests/native)."""

    def __init__(self, max_calls: int, max_bytes: int) -> None:
        self.max_calls, self.max_bytes, self.calls, self.held = max_calls, max_bytes, 0, 0

    def admit_call(self, size: int) -> tuple[int, int, int]:
        if self.calls >= self.max_calls:
            return 1, self.calls, self.held
        if self.held + size > self.max_bytes:
            return 2, self.calls, self.held
        self.calls, self.held = self.calls + 1, self.held + size
        return 0, self.calls - 1, self.held - size

    def release_call(self, size: int) -> None:
        self.calls, self.held = self.calls - 1, self.held - size

    def admit_bytes(self, size: int) -> tuple[int, int]:
        if self.held + size > self.max_bytes:
            return 2, self.held
        self.held += size
        return 0, self.held - size

    def release_bytes(self, size: int) -> None:
        self.held -= size


def test_shared_counters_are_the_ones_counted_and_refused_in_the_same_words() -> None:
    limits = CallLimits(max_calls=2, max_bytes=100)
    shared = Counters(2, 100)
    limits.share(shared)
    shared.admit_call(40)  # a call the other path admitted
    limits.admit(50)
    assert (shared.calls, shared.held, limits.calls, limits.held_bytes) == (2, 90, 0, 0)
    with pytest.raises(ResourceExhaustedError, match="handling 2 inference calls, its limit"):
        limits.admit(1)
    limits.release(50)
    with pytest.raises(ResourceExhaustedError, match="holding 40 bytes of requests and this 61-byte request"):
        limits.admit(61)
    limits.admit_bytes(60)
    assert shared.held == 100
    limits.release_bytes(60)
    assert (shared.calls, shared.held) == (1, 40)
