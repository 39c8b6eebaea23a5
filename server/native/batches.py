"""Running the batches the native batcher delivers: Python's part of the native ModelInfer path, once per batch.

C++ has decoded, checked, queued and merged the requests (native/src/batcher.cpp); here the merged inputs run on the
version's runner (ONNX Runtime on the compute pool, as on the Python path), the execution is observed (statistics,
prediction telemetry) and the outputs go back to C++, which splits them per request and answers. A merged
execution that fails is bisected exactly like DynamicBatcher._isolate, so that only the failing requests fail.
Per request, only the statistics are recorded here (a list index and a histogram sample each).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from oip.codec import datatype_for, dtype_for
from server.batching.batcher import TracedBatchObserver
from server.batching.tensors import check_splittable
from server.errors import InferenceFailedError, ModelNotReadyError, ServerError, status_name
from server.grpc.errors import status_for
from server.native.fast_table import VersionKeys
from server.native.shared_queue import Tickets, raw_view
from server.routing.table import Route
from server.runtime.runner import RunResult, RunTimings
from server.telemetry.failures import log_failed_request
from server.versions.loaded import LoadedVersion

log = logging.getLogger(__name__)

_ROUTES = tuple(Route)


@dataclass(frozen=True, slots=True)
class NativeBatch:
    """One delivered batch, as the extension's event carries it."""

    batch_id: int
    key: int
    inputs: dict[str, npt.NDArray[Any]]
    output_names: tuple[str, ...]
    rows: list[int]
    enqueued_ns: list[int]
    routes: list[int]
    request_ids: list[str]
    tickets: list[int]
    """Non-zero: a request the Python path queued here (server/native/shared_queue.py); it gets its share of the
    outputs through its future, and the Python path accounts for it."""
    delivered_ns: int
    """When C++ handed it over (time.perf_counter_ns's clock)."""

    @classmethod
    def from_event(cls, event: tuple[Any, ...]) -> NativeBatch:
        _, batch_id, key, inputs, output_names, rows, enqueued_ns, routes, request_ids, tickets, delivered = event
        arrays = {name: raw.view(dtype_for(datatype)).reshape(shape) for name, datatype, shape, raw in inputs}
        return cls(
            batch_id, key, arrays, tuple(output_names), rows, enqueued_ns, routes, request_ids, tickets, delivered
        )


@dataclass(frozen=True, slots=True)
class _Part:
    """Requests [first, first + count) of a batch, run together on `inputs` (their rows of the merged inputs):
    the whole batch, or a half of a failed one being bisected."""

    loaded: LoadedVersion | None
    batch: NativeBatch
    first: int
    count: int
    inputs: dict[str, npt.NDArray[Any]]
    started_ns: int

    @property
    def version(self) -> LoadedVersion:
        assert self.loaded is not None, "only a batch of a known version runs"
        return self.loaded

    @property
    def whole(self) -> bool:
        return self.count == len(self.batch.rows)

    @property
    def rows(self) -> list[int]:
        return self.batch.rows[self.first : self.first + self.count]

    @property
    def tickets(self) -> list[int]:
        return self.batch.tickets[self.first : self.first + self.count]

    @property
    def enqueued_ns(self) -> list[int]:
        return self.batch.enqueued_ns[self.first : self.first + self.count]

    def halves(self) -> tuple[_Part, _Part]:
        """The two halves by request, each with its rows of the inputs."""
        middle = self.count // 2
        offsets = list(itertools.accumulate(self.rows, initial=0))
        low, mid, high = offsets[0], offsets[middle], offsets[-1]
        first = {name: array[low:mid] for name, array in self.inputs.items()}
        second = {name: array[mid:high] for name, array in self.inputs.items()}
        return (
            _Part(self.loaded, self.batch, self.first, middle, first, self.started_ns),
            _Part(self.loaded, self.batch, self.first + middle, self.count - middle, second, self.started_ns),
        )


def _wire(outputs: Mapping[str, npt.NDArray[Any]]) -> list[tuple[str, str, tuple[int, ...], npt.NDArray[Any]]]:
    return [(name, datatype_for(array.dtype), tuple(array.shape), raw_view(array)) for name, array in outputs.items()]


class NativeBatches:
    """Runs each delivered batch as a task on the event loop."""

    def __init__(
        self,
        native: Any,
        keys: VersionKeys,
        tickets: Tickets,
        handover: Callable[[float], None] | None = None,
        taken: Callable[[str, int], None] | None = None,
        traced: TracedBatchObserver | None = None,
    ) -> None:
        """`handover` observes, per batch, the seconds from C++ handing it over to its run starting here; `taken`
        counts, per batch, the model's requests the native path took (those Python queued there excluded);
        `traced` hears of each execution that served sampled requests (the Python path's, with their spans)."""
        self._native = native
        self._keys = keys
        self._tickets = tickets
        self._handover = handover
        self._taken = taken
        self._traced = traced
        self._running: set[asyncio.Task[None]] = set()

    def run(self, event: tuple[Any, ...]) -> None:
        batch = NativeBatch.from_event(event)
        task = asyncio.get_running_loop().create_task(self._execute(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def stop(self) -> None:
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)

    async def _execute(self, batch: NativeBatch) -> None:
        try:
            started_ns = time.perf_counter_ns()
            if self._handover is not None:
                self._handover((started_ns - batch.delivered_ns) / 1e9)
            loaded = self._keys.version(batch.key)
            whole = _Part(loaded, batch, 0, len(batch.rows), batch.inputs, started_ns)
            if loaded is None:
                self._fail(whole, ModelNotReadyError("the model version was unloaded"))
                return
            routed = loaded.recorder.routed
            taken = 0
            for route, ticket in zip(batch.routes, batch.tickets, strict=True):
                if not ticket:  # the Python path's router counted its own
                    routed(_ROUTES[route])
                    taken += 1
            if taken and self._taken is not None:
                self._taken(loaded.model_name, taken)
            await self._run(whole)
        except Exception:  # never let a batch end without its answers (release fails the rest INTERNAL)
            log.exception("a native batch failed unexpectedly")
        finally:
            self._native.release(batch.batch_id)

    async def _run(self, part: _Part) -> None:
        loaded, batch = part.version, part.batch
        try:
            result = await loaded.runner.run(part.inputs, batch.output_names)
        except Exception as error:
            if part.count == 1:
                if part.whole:
                    self._native.executed(batch.batch_id)
                self._fail(part, error)
                return
            if part.whole:  # once per failed batch, as DynamicBatcher._isolate
                log.warning(
                    "a merged execution failed; running its requests in smaller batches so that only the failing "
                    "ones fail",
                    extra={"model": loaded.label, "requests": part.count, "error": str(error)},
                )
            for half in part.halves():
                await self._run(half)
            return
        if part.whole:
            # The instance is free: a batch already queued starts while these answers are written (the Python
            # batcher's hand-over).
            self._native.executed(batch.batch_id)
        if part.count > 1:  # outputs that cannot be split fail the whole execution, as on the Python path
            try:
                check_splittable(result.outputs, sum(part.rows), loaded.label)
            except InferenceFailedError as error:
                self._fail(part, error)
                return
        self._answer(part, result)

    def _answer(self, part: _Part, result: RunResult) -> None:
        loaded, rows = part.version, part.rows
        loaded.recorder.executed(sum(rows), result.timings, result.outputs, part.inputs)
        self._native.answer(part.batch.batch_id, part.first, part.count, _wire(result.outputs))
        now = time.perf_counter_ns()
        timings = result.timings
        tickets, enqueued = part.tickets, part.enqueued_ns
        if any(tickets):
            if self._traced is not None:
                traces = [trace for ticket in tickets if ticket and (trace := self._tickets.trace(ticket)) is not None]
                if traces:
                    self._traced(traces, part.started_ns, sum(rows), part.count)
            self._resolve_tickets(part, result)
        # The native calls' statistics, one call for the batch: each request's time in the server and in the queue.
        native = [index for index, ticket in enumerate(tickets) if not ticket]
        if native:
            loaded.recorder.succeeded_many(
                sum(rows[index] for index in native),
                [now - enqueued[index] for index in native],
                [part.started_ns - enqueued[index] + timings.queue_ns for index in native],
                timings,
            )

    def _resolve_tickets(self, part: _Part, result: RunResult) -> None:
        """The Python path's requests in this execution get their rows of the outputs (it accounts for them)."""
        timings, outputs = result.timings, result.outputs
        offset = 0
        for size, ticket, enqueued in zip(part.rows, part.tickets, part.enqueued_ns, strict=True):
            future = self._tickets.take(ticket) if ticket else None
            if future is not None and not future.done():
                share = outputs if part.count == 1 else {n: a[offset : offset + size] for n, a in outputs.items()}
                timed = RunTimings(
                    queue_ns=part.started_ns - enqueued + timings.queue_ns,
                    input_ns=timings.input_ns,
                    infer_ns=timings.infer_ns,
                    output_ns=timings.output_ns,
                )
                future.set_result(RunResult(outputs=share, timings=timed))
            offset += size

    def _fail(self, part: _Part, error: Exception) -> None:
        batch = part.batch
        code, message = status_for(error)
        self._native.fail(batch.batch_id, part.first, part.count, code.value[0], message.encode("utf-8", "replace"))
        for ticket in part.tickets:  # the Python path's own requests hear it through their futures
            future = self._tickets.take(ticket) if ticket else None
            if future is not None and not future.done():
                future.set_exception(error)
        loaded = part.loaded
        if loaded is None:
            return
        name = status_name(error)
        if not isinstance(error, ServerError):
            log.error("batch execution failed", exc_info=error, extra={"model": loaded.label})
        now = time.perf_counter_ns()
        for index, (ticket, enqueued) in enumerate(zip(part.tickets, part.enqueued_ns, strict=True)):
            if ticket:
                continue
            loaded.recorder.failed(name, now - enqueued)
            if isinstance(error, ServerError):
                request_id = batch.request_ids[part.first + index]
                log_failed_request(loaded.model_name, loaded.version_text, name, request_id, None, error)
