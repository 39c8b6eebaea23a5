"""Overload bounds for the inference RPCs: calls in progress and request bytes held, checked before decoding.

Past these bounds a call is answered RESOURCE_EXHAUSTED at once (clients retry it with backoff) instead of
queueing without limit: grpc-core would otherwise cancel the calls that pile up in its own pending queue
(CANCELLED, which clients do not retry), and large requests would hold memory without bound.
"""

from __future__ import annotations

from typing import Protocol

from server.errors import ResourceExhaustedError

ADMITTED, TOO_MANY_CALLS, TOO_MANY_BYTES = 0, 1, 2


class SharedCounts(Protocol):
    """Counters another path admits against too (the native frontend's C++ ModelInfer path): one pair of limits
    for the whole process. Each admit returns (ADMITTED | TOO_MANY_CALLS | TOO_MANY_BYTES, ...the counts it saw)."""

    def admit_call(self, size: int) -> tuple[int, int, int]: ...

    def release_call(self, size: int) -> None: ...

    def admit_bytes(self, size: int) -> tuple[int, int]: ...

    def release_bytes(self, size: int) -> None: ...


class CallLimits:
    """Counts the inference calls in progress and the raw request bytes they hold, and refuses past the limits.

    Unary calls count their message size from `admit` until `release` (when the handler returns its response,
    which drops the request's bytes); an open stream counts as one call holding no bytes, and each request it
    serves counts its size from `admit_bytes` until `release_bytes` (streams are also bounded one by one, by
    `server.grpc.streaming`). Only the event loop's thread touches the counters; on the native frontend they are
    shared (`share`) with its C++ ModelInfer path, as atomics in the extension, so one pair of limits holds for both.
    """

    __slots__ = ("_shared", "calls", "held_bytes", "max_bytes", "max_calls")

    def __init__(self, max_calls: int, max_bytes: int) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.calls = 0
        self.held_bytes = 0
        self._shared: SharedCounts | None = None

    def share(self, counts: SharedCounts) -> None:
        """From now on count in `counts`, which the native frontend's C++ path admits against too (same limits)."""
        self._shared = counts

    def admit(self, size: int) -> None:
        """Count a call holding `size` request bytes in, or raise ResourceExhaustedError (RESOURCE_EXHAUSTED)."""
        # Runs for every inference call: two compares and two additions on ints, no lock (one event loop).
        if self._shared is not None:
            status, calls, held = self._shared.admit_call(size)
            if status == TOO_MANY_CALLS:
                raise self._too_many_calls(calls)
            if status == TOO_MANY_BYTES:
                raise self._too_many_bytes(held, size)
            return
        if self.calls >= self.max_calls:
            raise self._too_many_calls(self.calls)
        self._check_bytes(size)
        self.calls += 1
        self.held_bytes += size

    def admit_bytes(self, size: int) -> None:
        """Count a streamed request of `size` bytes in, or raise ResourceExhaustedError past max_bytes."""
        if self._shared is not None:
            status, held = self._shared.admit_bytes(size)
            if status != ADMITTED:
                raise self._too_many_bytes(held, size)
            return
        self._check_bytes(size)
        self.held_bytes += size

    def release_bytes(self, size: int) -> None:
        """A streamed request admitted with `admit_bytes` has been answered."""
        if self._shared is not None:
            self._shared.release_bytes(size)
            return
        self.held_bytes -= size

    def _check_bytes(self, size: int) -> None:
        if self.held_bytes + size > self.max_bytes:
            raise self._too_many_bytes(self.held_bytes, size)

    def _too_many_calls(self, calls: int) -> ResourceExhaustedError:
        return ResourceExhaustedError(
            f"server is handling {calls} inference calls, its limit (--max-concurrent-rpcs, "
            "SERVER_GRPC_MAX_CONCURRENT_RPCS); retry with backoff"
        )

    def _too_many_bytes(self, held: int, size: int) -> ResourceExhaustedError:
        return ResourceExhaustedError(
            f"server is holding {held} bytes of requests and this {size}-byte request would pass "
            f"its limit of {self.max_bytes} (--max-inflight-bytes, SERVER_GRPC_MAX_INFLIGHT_BYTES); retry"
        )

    def release(self, size: int) -> None:
        """An admitted call holding `size` bytes has ended (answered, failed or cancelled)."""
        if self._shared is not None:
            self._shared.release_call(size)
            return
        self.calls -= 1
        self.held_bytes -= size
