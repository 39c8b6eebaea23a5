"""The dynamic batcher of one model version: queue requests, form batches, run them, answer each request.

Whenever an instance is free, whatever compatible requests are queued form the
next batch (up to max_batch_size). With max_queue_delay_us = 0 that adds no
deliberate delay: batches grow while the instances are busy, and an instance that
finishes a batch while a full one waits starts it before the finished batch's
responses go out. A positive delay lets a batch wait for more requests, up to a
preferred or the maximum size.

Otherwise a batch first lets the event loop catch up with requests that are
arriving at that moment ("settling"): a request reaches the queue several loop
turns after its bytes reach the socket, so without this a burst of simultaneous
requests would be cut into batches of one or two, each paying a whole execution.

A merged execution that fails is bisected, so that one request's bad data fails that request
only, never its batch-mates (`_isolate`). Requests a model could reject one by one are rejected
before they are queued (server.admission), so this is for failures only the runtime can find.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt

from server.batching.pending import PendingRequest, merge_key
from server.batching.queue import RequestQueue
from server.batching.tensors import merge_inputs, split_outputs
from server.errors import DeadlineExceededError, ModelNotReadyError, ServerError
from server.runtime.runner import Runner, RunResult, RunTimings

log = logging.getLogger(__name__)

ExecutionObserver = Callable[[int, RunTimings, Mapping[str, npt.NDArray[Any]], Mapping[str, npt.NDArray[Any]]], None]
"""Told about every execution: (rows in the batch, its timings, the batch's merged outputs and inputs).

Called on the event loop once per batch, so per-batch work (prediction telemetry, shadow diffs)
never touches the per-request path. The arrays are shared with the responses: read, never modify."""

TracedBatchObserver = Callable[[list[object], int, int, int], None]
"""Told about every execution that served traced requests: (their `trace` objects, when the execution started
(perf_counter_ns), rows in the batch, requests in the batch). Called on the event loop once per such batch.

The batcher only carries `trace` objects; what they are is the observer's business (server.tracing)."""

#: A loop turn shorter than this ran nothing else, so the loop has caught up with arrivals.
QUIET_TURN_NS = 30_000


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch_size: int
    """Rows per execution; 0 means the model has no batch dimension (one request per execution)."""
    merge: bool = True
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = ()
    max_queue_size: int = 1024
    instances: int = 1
    priority_levels: int = 1
    max_settle_us: int = 500
    """How long settling may hold a batch back at most, however busy the loop stays."""


class Batcher(Protocol):
    """What a loaded version needs of its batcher: DynamicBatcher, or the native frontend's shared C++ queue
    (server/native/shared_queue.py)."""

    @property
    def policy(self) -> BatchPolicy: ...

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
    ) -> RunResult: ...

    async def stop(self) -> None: ...


class DynamicBatcher:
    """Create and `await start()` inside the running loop; `await stop()` after the version drained."""

    def __init__(
        self,
        runner: Runner,
        policy: BatchPolicy,
        label: str,
        observe: ExecutionObserver,
        traced: TracedBatchObserver | None = None,
    ) -> None:
        """`traced` hears of executions that served requests submitted with a `trace` (None: tracing off)."""
        self._runner = runner
        self._policy = policy
        self._label = label
        self._observe = observe
        self._traced = traced
        self._queue = RequestQueue(policy.max_queue_size, policy.priority_levels, label)
        self._max_rows = max(1, policy.max_batch_size)
        self._merge = policy.merge and policy.max_batch_size > 0
        self._arrived: asyncio.Event | None = None
        self._slots: asyncio.Semaphore | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._executions: set[asyncio.Task[None]] = set()

    @property
    def policy(self) -> BatchPolicy:
        return self._policy

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self._policy.instances)
        self._loop_task = asyncio.create_task(self._schedule(), name=f"batcher {self._label}")

    async def stop(self) -> None:
        """Stop scheduling; queued requests fail with UNAVAILABLE, running batches finish."""
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        self._arrived = None  # later submits fail at once instead of waiting for a scheduler that is gone
        for request in self._queue.take_all():
            if not request.done:
                request.future.set_exception(ModelNotReadyError(f"model {self._label} was unloaded"))
        if self._executions:
            await asyncio.gather(*self._executions, return_exceptions=True)

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
        """Queue one request and wait for its share of an execution.

        A request still queued at `deadline` fails with DEADLINE_EXCEEDED and is never executed.
        With `enforce_deadline` false the caller's transport enforces it (a gRPC deadline cancels
        the call), so no timer is armed and expiry is only checked when a batch is formed.
        `key` is the request's `merge_key`, when the caller already knows it. `trace`, when given, goes to
        the traced-batch observer with the other traced requests of its execution.
        """
        if self._arrived is None:
            raise ModelNotReadyError(f"model {self._label} is not started")
        names = tuple(output_names)
        loop = asyncio.get_running_loop()
        request = PendingRequest(
            inputs=inputs,
            output_names=names,
            batch_size=batch_size,
            priority=priority,
            enqueued_ns=time.perf_counter_ns(),
            deadline=deadline,
            future=loop.create_future(),
            merge_key=merge_key(inputs, names) if key is None else key,
            trace=trace,
        )
        if deadline is not None and deadline <= time.monotonic():
            raise self._expired(request)
        self._queue.put(request)
        timer = None if deadline is None or not enforce_deadline else loop.call_at(deadline, self._expire, request)
        self._arrived.set()
        try:
            return await request.future
        finally:
            if timer is not None:
                timer.cancel()
            if request.future.cancelled():  # the caller went away: free its queue slot now
                self._queue.discard(request)

    def _expired(self, request: PendingRequest) -> DeadlineExceededError:
        waited_ms = (time.perf_counter_ns() - request.enqueued_ns) / 1e6
        return DeadlineExceededError(
            f"request to model {self._label} timed out after waiting {waited_ms:.1f} ms in the queue; "
            "it was not executed"
        )

    def _expire(self, request: PendingRequest) -> None:
        # Only a request still waiting expires: one already in an execution keeps its result.
        if not request.done and self._queue.discard(request):
            request.future.set_exception(self._expired(request))

    async def _schedule(self) -> None:
        """Start a batch whenever requests wait and an instance is free (busy instances hand over directly)."""
        assert self._arrived is not None and self._slots is not None
        while True:
            if not len(self._queue):
                self._arrived.clear()
                await self._arrived.wait()
                continue
            await self._slots.acquire()
            await self._settle()
            await self._wait_for_batch()
            if not self._launch():
                self._slots.release()

    def _launch(self) -> bool:
        """Take the next batch and start executing it on a slot the caller holds; False if none was queued."""
        batch = self._queue.take_batch(self._max_rows, self._merge)
        if not batch:
            return False
        task = asyncio.create_task(self._execute(batch))
        self._executions.add(task)
        task.add_done_callback(self._executions.discard)
        return True

    async def _settle(self) -> None:
        """With no queue delay, yield loop turns while the loop is busy (requests still coming in), briefly."""
        if self._policy.max_queue_delay_us > 0 or not self._merge:
            return
        give_up = time.perf_counter_ns() + self._policy.max_settle_us * 1000
        while len(self._queue) < self._max_rows:
            turn = time.perf_counter_ns()
            await asyncio.sleep(0)
            now = time.perf_counter_ns()
            if now - turn < QUIET_TURN_NS or now >= give_up:
                return

    def _filled(self) -> bool:
        """Whether the rows that could join the head's batch reach the maximum or a preferred size."""
        queued = self._queue.queued_batch_size()
        preferred = self._policy.preferred_batch_sizes
        # A request carrying several rows can step past a preferred size: past the largest, go too.
        return queued >= self._max_rows or queued in preferred or (bool(preferred) and queued > max(preferred))

    def _ready_now(self) -> bool:
        """Whether the queue holds a batch that gains nothing from waiting: full, preferred, or past its delay."""
        oldest = self._queue.oldest_enqueued_ns()
        if oldest is None:
            return False
        if self._filled():
            return True
        delay_ns = self._policy.max_queue_delay_us * 1000
        return delay_ns > 0 and time.perf_counter_ns() >= oldest + delay_ns

    async def _wait_for_batch(self) -> None:
        """With a queue delay, give the batch until the oldest request's delay runs out to fill up."""
        delay_ns = self._policy.max_queue_delay_us * 1000
        if delay_ns <= 0 or not self._merge:
            return
        assert self._arrived is not None
        while (oldest := self._queue.oldest_enqueued_ns()) is not None and not self._filled():
            remaining_s = (oldest + delay_ns - time.perf_counter_ns()) / 1e9
            if remaining_s <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining_s)
            except TimeoutError:
                return

    def _report_traced(self, live: list[PendingRequest], started_ns: int) -> None:
        assert self._traced is not None
        traces = [request.trace for request in live if request.trace is not None]
        if traces:
            self._traced(traces, started_ns, sum(request.batch_size for request in live), len(live))

    async def _execute(self, batch: list[PendingRequest]) -> None:
        assert self._slots is not None
        started_ns = time.perf_counter_ns()
        handed_over = False
        try:
            live = self._unexpired(batch)
            if not live:
                return
            inputs = merge_inputs(live)
            try:
                result = await self._runner.run(inputs, live[0].output_names)
            except Exception as error:
                if len(live) == 1:
                    raise
                await self._isolate(live, error, started_ns)
                return
            # The instance is free. A batch that is already complete starts before this one is answered,
            # so the runtime does not sit idle while these responses are encoded and sent; a smaller one
            # goes through the scheduler, which lets it grow while the loop catches up.
            handed_over = self._ready_now() and self._launch()
            self._answer(live, inputs, result, started_ns)
        except Exception as error:
            self._fail(batch, error)
        finally:
            if not handed_over:  # else the slot now belongs to the batch just launched
                self._slots.release()

    def _unexpired(self, batch: list[PendingRequest]) -> list[PendingRequest]:
        """Fail the requests whose deadline passed while queued; the live rest, in order."""
        now = time.monotonic()
        for request in batch:
            if not request.done and request.deadline is not None and request.deadline <= now:
                request.future.set_exception(self._expired(request))
        return [request for request in batch if not request.done]

    def _answer(
        self, live: list[PendingRequest], inputs: dict[str, npt.NDArray[Any]], result: RunResult, started_ns: int
    ) -> None:
        """Give each request of a successful execution its rows of the outputs."""
        parts = split_outputs(result.outputs, live, self._label)
        self._observe(sum(request.batch_size for request in live), result.timings, result.outputs, inputs)
        if self._traced is not None:
            self._report_traced(live, started_ns)
        for request, outputs in zip(live, parts, strict=True):
            if not request.done:
                waited = started_ns - request.enqueued_ns
                timings = RunTimings(
                    queue_ns=waited + result.timings.queue_ns,
                    input_ns=result.timings.input_ns,
                    infer_ns=result.timings.infer_ns,
                    output_ns=result.timings.output_ns,
                )
                request.future.set_result(RunResult(outputs=outputs, timings=timings))

    def _fail(self, requests: list[PendingRequest], error: Exception) -> None:
        if not isinstance(error, ServerError):
            log.error("batch execution failed", exc_info=error, extra={"model": self._label})
        for request in requests:
            if not request.done:
                request.future.set_exception(error)

    async def _isolate(self, failed: list[PendingRequest], error: Exception, started_ns: int) -> None:
        """Find the requests that make a merged execution fail, so that only they fail.

        One request's data can fail the execution it shares (a value the model rejects at run time),
        and its batch-mates must not pay for it. The batch is bisected on the instance it holds: a
        part that runs is answered, a single request that fails gets its own error. This happens
        once per failed batch (logged once) and costs at most 2 x (requests - 1) more executions.
        """
        log.warning(
            "a merged execution failed; running its requests in smaller batches so that only the failing ones fail",
            extra={"model": self._label, "requests": len(failed), "error": str(error)},
        )
        await self._bisect(failed, started_ns)

    async def _bisect(self, failed: list[PendingRequest], started_ns: int) -> None:
        middle = len(failed) // 2
        for half in (failed[:middle], failed[middle:]):
            live = [request for request in half if not request.done]  # some may have been cancelled meanwhile
            if not live:
                continue
            inputs = merge_inputs(live)
            try:
                result = await self._runner.run(inputs, live[0].output_names)
            except Exception as error:
                if len(live) == 1:
                    self._fail(live, error)
                else:
                    await self._bisect(live, started_ns)
                continue
            self._answer(live, inputs, result, started_ns)
