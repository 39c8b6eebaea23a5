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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from oip.codec import datatype_for, dtype_for
from server.batching.tensors import check_splittable
from server.errors import InferenceFailedError, ModelNotReadyError, ServerError, status_name
from server.grpc.errors import status_for
from server.native.fast_table import VersionKeys
from server.native.shared_queue import Tickets
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

    @classmethod
    def from_event(cls, event: tuple[Any, ...]) -> NativeBatch:
        _, batch_id, key, inputs, output_names, rows, enqueued_ns, routes, request_ids, tickets = event
        arrays = {name: raw.view(dtype_for(datatype)).reshape(shape) for name, datatype, shape, raw in inputs}
        return cls(batch_id, key, arrays, tuple(output_names), rows, enqueued_ns, routes, request_ids, tickets)


def _wire(outputs: Mapping[str, npt.NDArray[Any]]) -> list[tuple[str, str, tuple[int, ...], npt.NDArray[Any]]]:
    wire = []
    for name, array in outputs.items():
        contiguous = np.ascontiguousarray(array)
        if not contiguous.dtype.isnative:
            contiguous = contiguous.astype(contiguous.dtype.newbyteorder("="))
        wire.append((name, datatype_for(array.dtype), tuple(array.shape), contiguous.reshape(-1).view(np.uint8)))
    return wire


class NativeBatches:
    """Runs each delivered batch as a task on the event loop."""

    def __init__(self, native: Any, keys: VersionKeys, tickets: Tickets) -> None:
        self._native = native
        self._keys = keys
        self._tickets = tickets
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
            loaded = self._keys.version(batch.key)
            if loaded is None:
                error = ModelNotReadyError("the model version was unloaded")
                self._fail(None, batch, 0, len(batch.rows), error, time.perf_counter_ns())
                return
            routed = loaded.recorder.routed
            for route, ticket in zip(batch.routes, batch.tickets, strict=True):
                if not ticket:  # the Python path's router counted its own
                    routed(_ROUTES[route])
            await self._run(loaded, batch, 0, len(batch.rows), batch.inputs, time.perf_counter_ns())
        except Exception:  # never let a batch end without its answers (release fails the rest INTERNAL)
            log.exception("a native batch failed unexpectedly")
        finally:
            self._native.release(batch.batch_id)

    async def _run(
        self,
        loaded: LoadedVersion,
        batch: NativeBatch,
        first: int,
        count: int,
        inputs: dict[str, npt.NDArray[Any]],
        started_ns: int,
    ) -> None:
        try:
            result = await loaded.runner.run(inputs, batch.output_names)
        except Exception as error:
            if count == 1:
                if count == len(batch.rows):
                    self._native.executed(batch.batch_id)
                self._fail(loaded, batch, first, count, error, started_ns)
                return
            if count == len(batch.rows):  # once per failed batch, as DynamicBatcher._isolate
                log.warning(
                    "a merged execution failed; running its requests in smaller batches so that only the failing "
                    "ones fail",
                    extra={"model": loaded.label, "requests": count, "error": str(error)},
                )
            await self._bisect(loaded, batch, first, count, inputs, started_ns)
            return
        if count == len(batch.rows):
            # The instance is free: a batch already queued starts while these answers are written (the Python
            # batcher's hand-over).
            self._native.executed(batch.batch_id)
        if count > 1:  # outputs that cannot be split fail the whole execution, as on the Python path
            try:
                check_splittable(result.outputs, sum(batch.rows[first : first + count]), loaded.label)
            except InferenceFailedError as error:
                self._fail(loaded, batch, first, count, error, started_ns)
                return
        self._answer(loaded, batch, first, count, inputs, result, started_ns)

    async def _bisect(
        self,
        loaded: LoadedVersion,
        batch: NativeBatch,
        first: int,
        count: int,
        inputs: dict[str, npt.NDArray[Any]],
        started_ns: int,
    ) -> None:
        middle = count // 2
        offsets = list(itertools.accumulate(batch.rows[first : first + count], initial=0))
        for start, size in ((0, middle), (middle, count - middle)):
            low, high = offsets[start], offsets[start + size]
            part = {name: array[low:high] for name, array in inputs.items()}
            await self._run(loaded, batch, first + start, size, part, started_ns)

    def _answer(
        self,
        loaded: LoadedVersion,
        batch: NativeBatch,
        first: int,
        count: int,
        inputs: dict[str, npt.NDArray[Any]],
        result: RunResult,
        started_ns: int,
    ) -> None:
        rows = batch.rows[first : first + count]
        loaded.recorder.executed(sum(rows), result.timings, result.outputs, inputs)
        self._native.answer(batch.batch_id, first, count, _wire(result.outputs))
        now = time.perf_counter_ns()
        timings = result.timings
        tickets = batch.tickets[first : first + count]
        enqueued = batch.enqueued_ns[first : first + count]
        if any(tickets):
            self._resolve_tickets(batch, first, count, result, started_ns)
        # The native calls' statistics, one call for the batch: each request's time in the server and in the queue.
        native = [index for index, ticket in enumerate(tickets) if not ticket]
        if native:
            loaded.recorder.succeeded_many(
                sum(rows[index] for index in native),
                [now - enqueued[index] for index in native],
                [started_ns - enqueued[index] + timings.queue_ns for index in native],
                timings,
            )

    def _resolve_tickets(self, batch: NativeBatch, first: int, count: int, result: RunResult, started_ns: int) -> None:
        """The Python path's requests in this execution get their rows of the outputs (it accounts for them)."""
        timings = result.timings
        offset = 0
        for index in range(first, first + count):
            size, ticket = batch.rows[index], batch.tickets[index]
            future = self._tickets.take(ticket) if ticket else None
            if future is not None and not future.done():
                outputs = result.outputs
                part = (
                    outputs if count == 1 else {name: array[offset : offset + size] for name, array in outputs.items()}
                )
                share = RunTimings(
                    queue_ns=started_ns - batch.enqueued_ns[index] + timings.queue_ns,
                    input_ns=timings.input_ns,
                    infer_ns=timings.infer_ns,
                    output_ns=timings.output_ns,
                )
                future.set_result(RunResult(outputs=part, timings=share))
            offset += size

    def _fail(
        self,
        loaded: LoadedVersion | None,
        batch: NativeBatch,
        first: int,
        count: int,
        error: Exception,
        started_ns: int,
    ) -> None:
        code, message = status_for(error)
        self._native.fail(batch.batch_id, first, count, code.value[0], message.encode("utf-8", "replace"))
        for index in range(first, first + count):  # the Python path's own requests hear it through their futures
            ticket = batch.tickets[index]
            future = self._tickets.take(ticket) if ticket else None
            if future is not None and not future.done():
                future.set_exception(error)
        if loaded is None:
            return
        name = status_name(error)
        if not isinstance(error, ServerError):
            log.error("batch execution failed", exc_info=error, extra={"model": loaded.label})
        now = time.perf_counter_ns()
        for index in range(first, first + count):
            if batch.tickets[index]:
                continue
            loaded.recorder.failed(name, now - batch.enqueued_ns[index])
            if isinstance(error, ServerError):
                log_failed_request(loaded.model_name, loaded.version_text, name, batch.request_ids[index], None, error)
