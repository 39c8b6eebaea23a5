"""server.runtime.onnx_runner.OnnxRunner over recording sessions: an instance runs one execution at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from server.errors import ModelNotReadyError
from server.model_config import ModelConfig
from server.runtime.identity import ModelIdentity
from server.runtime.onnx_runner import LoadedOnnxModel, OnnxRunner, _session_options
from server.runtime.pool import InferencePool
from server.settings import RuntimeSettings
from server.types import ModelSignature

HOLD = -1.0
"""An input holding this value keeps its session busy until the test opens `RecordingSession.release`."""


class RecordingSession:
    """Stands in for an onnxruntime session: y = 2x, and records any overlapping use of itself."""

    release = threading.Event()

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy = False
        self.overlapped = False
        self.runs = 0

    def run(self, output_names: list[str], feed: dict[str, Any]) -> list[Any]:
        if self.busy:
            self.overlapped = True
        self.busy = True
        self.runs += 1
        try:
            if np.any(feed["x"] == HOLD):
                assert RecordingSession.release.wait(5)
            return [feed["x"] * 2 for _ in output_names]
        finally:
            self.busy = False


@pytest.fixture
async def pool() -> AsyncIterator[InferencePool]:
    """Shut down inside the test's loop: a thread may still be delivering a result when the test ends."""
    RecordingSession.release.clear()
    pool = InferencePool(4)
    yield pool
    RecordingSession.release.set()
    pool.shutdown()


def runner_over(sessions: tuple[RecordingSession, ...], pool: InferencePool) -> OnnxRunner:
    signature = ModelSignature(inputs=(), outputs=(), max_batch_size=0)
    model = LoadedOnnxModel(sessions, signature, ("CPUExecutionProvider",), ModelIdentity(sha256=""))
    return OnnxRunner(model, pool, label="m:1")


def x(value: float) -> dict[str, Any]:
    return {"x": np.full((1, 2), value, dtype=np.float32)}


async def until_busy(sessions: tuple[RecordingSession, ...], count: int) -> None:
    """Poll: the sessions run on worker threads, which cannot set an asyncio.Event."""
    async with asyncio.timeout(2):
        while True:
            if sum(session.busy for session in sessions) >= count:
                return
            await asyncio.sleep(0.001)


async def test_a_free_session_is_used_while_another_is_busy(pool: InferencePool) -> None:
    sessions = (RecordingSession("a"), RecordingSession("b"))
    runner = runner_over(sessions, pool)
    held = asyncio.ensure_future(runner.run(x(HOLD), ["y"]))
    await until_busy(sessions, 1)
    for value in (1.0, 2.0, 3.0):  # round-robin would put the second of these on the held session
        result = await runner.run(x(value), ["y"])
        np.testing.assert_array_equal(result.outputs["y"], x(value)["x"] * 2)
    RecordingSession.release.set()
    await held
    assert not any(session.overlapped for session in sessions)
    assert sorted(session.runs for session in sessions) == [1, 3]


async def test_executions_beyond_the_instances_wait_for_a_session(pool: InferencePool) -> None:
    sessions = (RecordingSession("a"), RecordingSession("b"))
    runner = runner_over(sessions, pool)
    calls = [asyncio.ensure_future(runner.run(x(HOLD), ["y"])) for _ in range(3)]
    await until_busy(sessions, 2)
    await asyncio.sleep(0.02)
    assert sum(session.runs for session in sessions) == 2  # the third waits although a thread is free
    RecordingSession.release.set()
    await asyncio.gather(*calls)
    assert sum(session.runs for session in sessions) == 3
    assert not any(session.overlapped for session in sessions)


async def test_a_cancelled_caller_does_not_free_a_session_that_still_runs(pool: InferencePool) -> None:
    sessions = (RecordingSession("a"),)
    runner = runner_over(sessions, pool)
    held = asyncio.ensure_future(runner.run(x(HOLD), ["y"]))
    await until_busy(sessions, 1)
    held.cancel()
    waiting = asyncio.ensure_future(runner.run(x(1.0), ["y"]))
    await asyncio.sleep(0.02)
    assert not waiting.done()  # the session is still inside the held run
    RecordingSession.release.set()
    await waiting
    assert not sessions[0].overlapped


async def test_a_closed_runner_fails_waiting_executions(pool: InferencePool) -> None:
    sessions = (RecordingSession("a"),)
    runner = runner_over(sessions, pool)
    held = asyncio.ensure_future(runner.run(x(HOLD), ["y"]))
    await until_busy(sessions, 1)
    waiting = asyncio.ensure_future(runner.run(x(1.0), ["y"]))
    await asyncio.sleep(0.01)
    runner.close()
    with pytest.raises(ModelNotReadyError, match="unloaded"):
        await waiting
    RecordingSession.release.set()
    await held


async def test_a_runner_keeps_a_pool_thread_per_session_until_closed(pool: InferencePool) -> None:
    # Pool of 4: two runners of 3 sessions each can run 6 executions at once, none waiting for a thread.
    first = (RecordingSession("a"), RecordingSession("b"), RecordingSession("c"))
    second = (RecordingSession("d"), RecordingSession("e"), RecordingSession("f"))
    runners = [runner_over(first, pool), runner_over(second, pool)]
    assert pool.size == 6
    calls = [asyncio.ensure_future(runner.run(x(HOLD), ["y"])) for runner in runners for _ in range(3)]
    await until_busy(first + second, 6)
    RecordingSession.release.set()
    await asyncio.gather(*calls)
    runners[0].close()
    runners[0].close()  # a second close gives nothing back twice
    assert pool.size == 4


@pytest.mark.parametrize(
    ("server_default", "model_setting", "expected"),
    [(False, None, False), (True, None, True), (False, True, True), (True, False, False)],
)
def test_the_memory_arena_follows_the_model_then_the_server(
    server_default: bool, model_setting: bool | None, expected: bool
) -> None:
    config = ModelConfig.model_validate({"runtime": {"memory_arena": model_setting}})
    options = _session_options(config, RuntimeSettings(memory_arena=server_default))
    assert options.enable_cpu_mem_arena is expected


def test_the_memory_arena_is_off_by_default() -> None:
    assert _session_options(ModelConfig(), RuntimeSettings()).enable_cpu_mem_arena is False
