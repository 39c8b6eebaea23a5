"""Shutdown admission for the inference RPCs: once draining, new calls are refused and open streams wind down.

grpc.aio's `server.stop(grace)` is not enough on its own: it stops asking grpc-core for new calls at once,
and core cancels the calls that had arrived but not yet been handed to us (the client sees CANCELLED,
which it does not retry), while open streams keep reading new requests until the grace period ends.
So the app drains first, at the application level, and only then stops grpc:

    drain.begin()                  # new ModelInfer/ModelStreamInfer: UNAVAILABLE "server is shutting down"
    await drain.wait_idle(grace)   # accepted calls finish; open streams answer their in-flight requests and end
    await drain.wait_quiet(limit)  # clients have heard UNAVAILABLE and stopped sending here
    await server.stop(rest)        # nothing of ours is left for grpc to cancel

The quiet wait closes the last gap: a call that reaches the connection after grpc stops (before the client has
read grpc's GOAWAY), or waits in grpc-core's queue for the event loop to take it, is cancelled by grpc-core. So
once there was traffic, grpc stops only after QUIET_S of a responsive event loop without a refused call.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

from server.errors import ShuttingDownError

SHUTTING_DOWN = "server is shutting down; retry on another replica"
#: No refused call for this long means clients have stopped sending here: longer than the first backoffs of a
#: retrying client (clients.RetryPolicy waits 0.05 s, then 0.1 s, before its 2nd and 3rd tries).
QUIET_S = 0.25
#: Clients that keep retrying here hold the shutdown no longer than this, past the in-flight calls.
QUIET_MAX_S = 2.0
#: How often the quiet wait looks. A look that comes more than LAG_TICKS ticks late means the loop was too busy
#: to take calls from grpc-core (some may be queued there unseen), so the quiet time starts again.
QUIET_TICK_S = 0.02
LAG_TICKS = 5


class OutsideCalls(Protocol):
    """Inference calls admitted elsewhere (the native frontend's C++ path) that the drain must also wait for."""

    def stop_admitting(self) -> None: ...

    def in_flight(self) -> int: ...


class Drain:
    """Counts the inference calls (unary calls and open streams) in progress, and refuses new ones once draining.

    `admit()`/`release()` bracket every inference call; both are plain counter updates, so the hot path pays
    nothing else. The events are created on first use, inside the running loop.
    """

    def __init__(self) -> None:
        self.draining = False
        self._in_flight = 0
        self._last_refused = 0.0
        self._busy_at_begin = False
        self._begun: asyncio.Event | None = None
        self._idle: asyncio.Event | None = None
        self._outside: list[OutsideCalls] = []

    def watch(self, outside: OutsideCalls) -> None:
        """Also drain `outside`: told to stop admitting on begin(), waited for by wait_idle()."""
        self._outside.append(outside)

    def _outside_in_flight(self) -> int:
        return sum(outside.in_flight() for outside in self._outside)

    @property
    def in_flight(self) -> int:
        return self._in_flight + self._outside_in_flight()

    def admit(self) -> None:
        """Count a new call in, or raise ShuttingDownError (UNAVAILABLE) once draining."""
        if self.draining:
            self.refused()
            raise ShuttingDownError(SHUTTING_DOWN)
        self._in_flight += 1

    def refused(self) -> None:
        """A call, or a request on an open stream, was refused while draining."""
        self._last_refused = time.monotonic()

    def release(self) -> None:
        """An admitted call has ended (answered, failed or cancelled)."""
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    def begun(self) -> asyncio.Event:
        """Set once draining begins: an open stream stops taking requests when it is."""
        if self._begun is None:
            self._begun = asyncio.Event()
            if self.draining:
                self._begun.set()
        return self._begun

    def begin(self) -> None:
        """Refuse new calls from now on and tell open streams to wind down. Idempotent."""
        if not self.draining:
            for outside in self._outside:
                outside.stop_admitting()
            self._busy_at_begin = self.in_flight > 0
        self.draining = True
        self.begun().set()
        if self._idle is None:
            self._idle = asyncio.Event()
        if self._in_flight == 0:
            self._idle.set()

    async def wait_idle(self, timeout_s: float) -> bool:
        """Wait, after begin(), until every admitted call has ended; False when `timeout_s` passed first."""
        assert self._idle is not None, "begin() first"
        deadline = time.monotonic() + timeout_s
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        while self._outside_in_flight() > 0:  # counted elsewhere (C++): polled
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(QUIET_TICK_S / 4)
        return True

    async def wait_quiet(self, timeout_s: float) -> None:
        """After traffic (calls in flight at begin(), or refused since), wait for QUIET_S of a responsive loop
        without a refused call, or until `timeout_s` has passed. Without traffic, return at once."""
        if not self._busy_at_begin and self._last_refused == 0.0:
            return
        now = time.monotonic()
        limit = now + timeout_s
        quiet_since = now
        while True:  # a refusal, or a late tick, starts the quiet time again
            quiet_since = max(quiet_since, self._last_refused)
            if now >= limit or now - quiet_since >= QUIET_S:
                return
            await asyncio.sleep(min(QUIET_TICK_S, limit - now))
            looked, now = now, time.monotonic()
            if now - looked > LAG_TICKS * QUIET_TICK_S:
                quiet_since = now
