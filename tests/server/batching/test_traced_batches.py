"""The batcher carries each request's opaque `trace` and reports the traced ones of an execution once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from server.batching.batcher import BatchPolicy, DynamicBatcher
from tests.server.batching.support import FakeRunner, Observer, rows, until


class TracedBatches:
    def __init__(self) -> None:
        self.calls: list[tuple[list[object], int, int, int]] = []

    def __call__(self, traces: list[object], started_ns: int, batch_rows: int, requests: int) -> None:
        self.calls.append((traces, started_ns, batch_rows, requests))


@pytest.fixture
async def traced() -> AsyncIterator[tuple[DynamicBatcher, FakeRunner, TracedBatches]]:
    runner, observer = FakeRunner(held=True), TracedBatches()
    batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=8), "m:1", Observer(), observer)
    await batcher.start()
    yield batcher, runner, observer
    runner.gate.set()
    await batcher.stop()


async def test_each_execution_reports_its_traced_requests_once(
    traced: tuple[DynamicBatcher, FakeRunner, TracedBatches],
) -> None:
    batcher, runner, observer = traced
    first = asyncio.create_task(batcher.submit({"x": rows(1.0)}, ("y",), 1, trace="a"))
    await until(lambda: runner.active == 1)  # the first executes alone; the next three queue behind it
    rest = [
        asyncio.create_task(batcher.submit({"x": rows(2.0, 3.0)}, ("y",), 2, trace="b")),
        asyncio.create_task(batcher.submit({"x": rows(4.0)}, ("y",), 1)),
        asyncio.create_task(batcher.submit({"x": rows(5.0)}, ("y",), 1, trace="c")),
    ]
    await until(lambda: batcher.queued == 3)
    runner.gate.set()
    await asyncio.gather(first, *rest)

    assert runner.batch_rows == [1, 4]
    assert [(traces, batch_rows, requests) for traces, _, batch_rows, requests in observer.calls] == [
        (["a"], 1, 1),
        (["b", "c"], 4, 3),  # the untraced request counts in the batch, and is not among the traces
    ]
    assert observer.calls[0][1] <= observer.calls[1][1]  # execution start times, perf_counter_ns


async def test_an_execution_without_traced_requests_is_not_reported(
    traced: tuple[DynamicBatcher, FakeRunner, TracedBatches],
) -> None:
    batcher, runner, observer = traced
    runner.gate.set()
    await batcher.submit({"x": rows(1.0)}, ("y",), 1)
    assert runner.batch_rows == [1] and observer.calls == []


async def test_a_failed_execution_is_not_reported(traced: tuple[DynamicBatcher, FakeRunner, TracedBatches]) -> None:
    batcher, runner, observer = traced
    runner.failures[0] = RuntimeError("boom")
    runner.gate.set()
    with pytest.raises(RuntimeError, match="boom"):
        await batcher.submit({"x": rows(1.0)}, ("y",), 1, trace="a")
    assert observer.calls == []
