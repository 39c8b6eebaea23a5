"""Overload bounds for the inference RPCs: calls in progress and request bytes held, checked before decoding.

Past these bounds a call is answered RESOURCE_EXHAUSTED at once (clients retry it with backoff) instead of
queueing without limit: grpc-core would otherwise cancel the calls that pile up in its own pending queue
(CANCELLED, which clients do not retry), and large requests would hold memory without bound.
"""

from __future__ import annotations

from server.errors import ResourceExhaustedError


class CallLimits:
    """Counts the inference calls in progress and the raw request bytes they hold, and refuses past the limits.

    Unary calls count their message size from `admit` until `release` (when the handler returns its response,
    which drops the request's bytes); an open stream counts as one call holding no bytes, and each request it
    serves counts its size from `admit_bytes` until `release_bytes` (streams are also bounded one by one, by
    `server.grpc.streaming`). Only the event loop's thread touches the counters.
    """

    __slots__ = ("calls", "held_bytes", "max_bytes", "max_calls")

    def __init__(self, max_calls: int, max_bytes: int) -> None:
        self.max_calls = max_calls
        self.max_bytes = max_bytes
        self.calls = 0
        self.held_bytes = 0

    def admit(self, size: int) -> None:
        """Count a call holding `size` request bytes in, or raise ResourceExhaustedError (RESOURCE_EXHAUSTED)."""
        # Runs for every inference call: two compares and two additions on ints, no lock (one event loop).
        if self.calls >= self.max_calls:
            raise ResourceExhaustedError(
                f"server is handling {self.calls} inference calls, its limit (--max-concurrent-rpcs, "
                "SERVER_GRPC_MAX_CONCURRENT_RPCS); retry with backoff"
            )
        self._check_bytes(size)
        self.calls += 1
        self.held_bytes += size

    def admit_bytes(self, size: int) -> None:
        """Count a streamed request of `size` bytes in, or raise ResourceExhaustedError past max_bytes."""
        self._check_bytes(size)
        self.held_bytes += size

    def release_bytes(self, size: int) -> None:
        """A streamed request admitted with `admit_bytes` has been answered."""
        self.held_bytes -= size

    def _check_bytes(self, size: int) -> None:
        if self.held_bytes + size > self.max_bytes:
            raise ResourceExhaustedError(
                f"server is holding {self.held_bytes} bytes of requests and this {size}-byte request would pass "
                f"its limit of {self.max_bytes} (--max-inflight-bytes, SERVER_GRPC_MAX_INFLIGHT_BYTES); retry"
            )

    def release(self, size: int) -> None:
        """An admitted call holding `size` bytes has ended (answered, failed or cancelled)."""
        self.calls -= 1
        self.held_bytes -= size
