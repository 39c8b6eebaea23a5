"""One queue per version on the native frontend: requests the Python path serves (parameters, pinned spellings
the table does not list, streams) wait in the same C++ batcher as the native calls, so that both share the
version's instances, priorities and batches exactly as one batcher would.

`SharedQueueBatcher` stands in for the version's DynamicBatcher (same `submit`); each request gets a ticket, and
its future is answered when a batch holding it has run (server/native/batches.py) or when C++ drops it unrun.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from oip.codec import has_wire_byte_order
from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.errors import DeadlineExceededError, ResourceExhaustedError, ServerError, ShuttingDownError
from server.grpc.draining import SHUTTING_DOWN
from server.runtime.runner import RunResult

#: VersionBatcher::Outcome.
CANCELLED, EXPIRED, STOPPING = 0, 1, 2


class Tickets:
    """The futures of the Python-path requests queued in C++, by ticket."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._waiting: dict[int, tuple[asyncio.Future[RunResult], str, object | None]] = {}

    def new(self, label: str, trace: object | None = None) -> tuple[int, asyncio.Future[RunResult]]:
        """`trace`: the request's span when tracing sampled it (the batch tracer hears of its execution)."""
        ticket = next(self._next)
        future: asyncio.Future[RunResult] = asyncio.get_running_loop().create_future()
        self._waiting[ticket] = (future, label, trace)
        return ticket, future

    def take(self, ticket: int) -> asyncio.Future[RunResult] | None:
        entry = self._waiting.pop(ticket, None)
        return None if entry is None else entry[0]

    def trace(self, ticket: int) -> object | None:
        entry = self._waiting.get(ticket)
        return None if entry is None else entry[2]

    def dropped(self, ticket: int, outcome: int, waited_ns: int) -> None:
        """C++ never ran it: past its deadline, or the server stopping."""
        entry = self._waiting.pop(ticket, None)
        if entry is None or entry[0].done():
            return
        future, label, _ = entry
        error = dropped_error(outcome, label, waited_ns)
        if error is None:
            future.cancel()
        else:
            future.set_exception(error)


def dropped_error(outcome: int, label: str, waited_ns: int) -> ServerError | None:
    """Why C++ answered a queued request without running it (VersionBatcher::Outcome), or None when its caller
    went away; native/src/server.cpp words its own native calls' answers the same."""
    if outcome == EXPIRED:
        return DeadlineExceededError(
            f"request to model {label} timed out after waiting {waited_ns / 1e6:.1f} ms in the queue; "
            "it was not executed"
        )
    if outcome == STOPPING:
        return ShuttingDownError(SHUTTING_DOWN)
    return None


def raw_view(array: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """A fixed-size array's bytes as the extension takes them: row-major, in the wire's byte order (oip.codec's
    rule), as a flat uint8 view (no copy when the array already is both)."""
    if not has_wire_byte_order(array.dtype):
        array = array.astype(array.dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).reshape(-1).view(np.uint8)


class SharedQueueBatcher:
    """The version's batcher while the native path serves it: DynamicBatcher.submit's contract, on the C++ queue."""

    def __init__(self, native: Any, key: int, label: str, tickets: Tickets, python_batcher: DynamicBatcher) -> None:
        self._native = native
        self._key = key
        self._label = label
        self._tickets = tickets
        self.python_batcher = python_batcher  # what the version gets back if the native path lets it go

    @property
    def policy(self) -> BatchPolicy:
        return self.python_batcher.policy

    @property
    def queued(self) -> int:
        return int(self._native.version_pending(self._key))

    async def submit(
        self,
        inputs: dict[str, npt.NDArray[Any]],
        output_names: Sequence[str],
        batch_size: int,
        priority: int = 1,
        deadline: float | None = None,
        enforce_deadline: bool = True,
        key: tuple[Any, ...] | None = None,
        trace: object | None = None,
    ) -> RunResult:
        """As DynamicBatcher.submit. `key` is not needed (C++ computes the layout); `trace`, a sampled request's
        span, goes to the batch tracer with its execution (server/native/batches.py)."""
        if deadline is not None and deadline <= time.monotonic():
            raise DeadlineExceededError(
                f"request to model {self._label} timed out after waiting 0.0 ms in the queue; it was not executed"
            )
        ticket, future = self._tickets.new(self._label, trace)
        wire = [(name, list(array.shape), raw_view(array)) for name, array in inputs.items()]
        # time.monotonic() and C++'s CLOCK_MONOTONIC are one clock.
        deadline_ns = -1 if deadline is None else int(deadline * 1e9)
        status, refusal = self._native.submit(
            self._key, ticket, wire, list(output_names), batch_size, priority, deadline_ns, enforce_deadline
        )
        if status != 0:
            self._tickets.take(ticket)
            if status == 1:
                raise ResourceExhaustedError(refusal)
            # No longer served natively (unloading): the Python batcher still runs it.
            return await self.python_batcher.submit(
                inputs, output_names, batch_size, priority, deadline, enforce_deadline, key, trace
            )
        try:
            return await future
        finally:
            if future.cancelled():  # the caller went away: free its queue slot now
                self._tickets.take(ticket)
                self._native.discard(self._key, ticket)

    async def stop(self) -> None:
        await self.python_batcher.stop()
