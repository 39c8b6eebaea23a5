"""Fixtures shared by the batching tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy.typing as npt
import pytest

from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.batching.pending import PendingRequest, merge_key
from tests.server.batching.support import FakeRunner, Observer, rows

MakeRequest = Callable[..., PendingRequest]
MakeBatcher = Callable[..., Awaitable[tuple[DynamicBatcher, Observer]]]


@pytest.fixture
def make_request() -> MakeRequest:
    """Build PendingRequests whose future belongs to the running loop (call it from an async test)."""
    clock = iter(range(1, 1_000_000))

    def make(
        inputs: dict[str, npt.NDArray[Any]] | None = None,
        *,
        batch_size: int | None = None,
        priority: int = 1,
        output_names: tuple[str, ...] = ("y",),
    ) -> PendingRequest:
        inputs = {"x": rows(0.0)} if inputs is None else inputs
        return PendingRequest(
            inputs=inputs,
            output_names=output_names,
            batch_size=next(iter(inputs.values())).shape[0] if batch_size is None else batch_size,
            priority=priority,
            enqueued_ns=next(clock),
            deadline=None,
            future=asyncio.get_running_loop().create_future(),
            merge_key=merge_key(inputs, output_names),
        )

    return make


@pytest.fixture
async def make_batcher() -> AsyncIterator[MakeBatcher]:
    """Start DynamicBatchers over a runner with a BatchPolicy from keywords; stops them all afterwards."""
    started: list[tuple[DynamicBatcher, FakeRunner]] = []

    async def make(runner: FakeRunner, **policy: Any) -> tuple[DynamicBatcher, Observer]:
        observer = Observer()
        batcher = DynamicBatcher(runner, BatchPolicy(**policy), "m:1", observer)
        await batcher.start()
        started.append((batcher, runner))
        return batcher, observer

    yield make
    for batcher, runner in started:
        runner.gate.set()
        await batcher.stop()
