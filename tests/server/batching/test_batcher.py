"""server.batching.batcher.DynamicBatcher over a gated FakeRunner: merging, limits, deadlines, shutdown."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.errors import DeadlineExceededError, InferenceFailedError, ModelNotReadyError, ResourceExhaustedError
from server.runtime.runner import RunResult
from tests.server.batching.conftest import MakeBatcher
from tests.server.batching.support import RUNNER_TIMINGS, FakeRunner, Observer, rows, until


def submit(batcher: DynamicBatcher, *values: float, width: int = 3, **scheduling: Any) -> asyncio.Task[RunResult]:
    """Submit one request of len(values) rows, each row filled with its value."""
    return asyncio.create_task(batcher.submit({"x": rows(*values, width=width)}, ("y",), len(values), **scheduling))


async def occupy(batcher: DynamicBatcher, runner: FakeRunner) -> asyncio.Task[RunResult]:
    """Submit a first request (value -1) and wait until it holds the instance (the runner's gate is closed)."""
    assert not runner.gate.is_set()
    task = submit(batcher, -1.0)
    await until(lambda: len(runner.calls) == 1)
    return task


def assert_own_rows(result: RunResult, *values: float, width: int = 3) -> None:
    np.testing.assert_array_equal(result.outputs["y"], rows(*values, width=width) * 2)


async def test_requests_queued_while_busy_merge_into_one_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    waiting = [submit(batcher, float(i)) for i in range(1, 20)]
    await until(lambda: batcher.queued == 19)
    assert len(runner.calls) == 1

    runner.gate.set()
    results = await asyncio.gather(*waiting)

    assert runner.batch_rows == [1, 19]
    assert runner.output_names == [("y",), ("y",)]
    assert_own_rows(await first, -1.0)
    for i, result in enumerate(results, start=1):
        assert_own_rows(result, float(i))
    assert observer.rows == [1, 19]
    assert sum(observer.rows) == 20
    assert all(timings == RUNNER_TIMINGS for _, timings in observer.executions)
    for result in results:  # the runner's timings, plus the time spent queued
        assert (result.timings.input_ns, result.timings.infer_ns, result.timings.output_ns) == (2, 3, 4)
        assert result.timings.queue_ns > RUNNER_TIMINGS.queue_ns
    assert batcher.queued == 0


async def test_an_idle_instance_runs_a_request_at_once(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    assert_own_rows(await batcher.submit({"x": rows(4.0, 5.0)}, ["y"], 2), 4.0, 5.0)
    assert runner.batch_rows == [2]
    assert observer.rows == [2]


async def test_requests_arriving_together_at_an_idle_instance_share_one_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    results = await asyncio.gather(*(submit(batcher, float(i)) for i in range(3)))
    assert runner.batch_rows == [3]
    for i, result in enumerate(results):
        assert_own_rows(result, float(i))
    assert observer.rows == [3]


async def test_the_observer_receives_the_merged_outputs_of_each_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    await asyncio.gather(*(submit(batcher, float(i)) for i in range(3)))
    assert len(observer.outputs) == 1
    np.testing.assert_array_equal(observer.outputs[0]["y"], rows(0.0, 2.0, 4.0))


async def test_max_batch_size_caps_the_rows_of_each_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=4)
    first = await occupy(batcher, runner)
    waiting = [submit(batcher, float(i)) for i in range(1, 11)]
    await until(lambda: batcher.queued == 10)
    runner.gate.set()
    results = await asyncio.gather(first, *waiting)

    assert runner.batch_rows == [1, 4, 4, 2]
    assert [call["x"][:, 0].tolist() for call in runner.calls] == [[-1], [1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    for value, result in zip((-1.0, *range(1, 11)), results, strict=True):
        assert_own_rows(result, float(value))
    assert observer.rows == [1, 4, 4, 2]


async def test_requests_carrying_a_batch_merge_when_they_fit(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=8)
    first = await occupy(batcher, runner)
    waiting = [submit(batcher, 10.0 * i, 10.0 * i + 1, 10.0 * i + 2) for i in range(1, 4)]
    await until(lambda: batcher.queued == 3)
    runner.gate.set()
    results = await asyncio.gather(first, *waiting)

    assert runner.batch_rows == [1, 6, 3]  # 3+3 fit in 8, a third 3 would not
    for i, result in enumerate(results[1:], start=1):
        assert_own_rows(result, 10.0 * i, 10.0 * i + 1, 10.0 * i + 2)
    assert observer.rows == [1, 6, 3]


async def test_requests_of_different_shapes_never_share_an_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    narrow1, wide1, narrow2, wide2 = (
        submit(batcher, 1.0, width=3),
        submit(batcher, 2.0, width=5),
        submit(batcher, 3.0, width=3),
        submit(batcher, 4.0, width=5),
    )
    await until(lambda: batcher.queued == 4)
    runner.gate.set()
    await asyncio.gather(first, narrow1, wide1, narrow2, wide2)

    assert runner.shapes == [(1, 3), (2, 3), (2, 5)]
    assert_own_rows(narrow1.result(), 1.0, width=3)
    assert_own_rows(wide1.result(), 2.0, width=5)
    assert_own_rows(narrow2.result(), 3.0, width=3)
    assert_own_rows(wide2.result(), 4.0, width=5)


async def test_with_merging_disabled_each_request_runs_alone(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=32, merge=False)
    first = await occupy(batcher, runner)
    waiting = [submit(batcher, float(i)) for i in range(1, 4)]
    await until(lambda: batcher.queued == 3)
    runner.gate.set()
    results = await asyncio.gather(first, *waiting)

    assert runner.batch_rows == [1, 1, 1, 1]
    for value, result in zip((-1.0, 1.0, 2.0, 3.0), results, strict=True):
        assert_own_rows(result, value)
    assert observer.rows == [1, 1, 1, 1]


async def test_a_model_without_batch_dimension_runs_one_request_per_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=0)

    def vector(value: float) -> dict[str, npt.NDArray[Any]]:
        return {"x": np.full((3,), value, dtype=np.float32)}

    tasks = [asyncio.create_task(batcher.submit(vector(-1.0), ("y",), 1))]
    await until(lambda: len(runner.calls) == 1)
    tasks += [asyncio.create_task(batcher.submit(vector(float(i)), ("y",), 1)) for i in range(1, 4)]
    await until(lambda: batcher.queued == 3)
    runner.gate.set()
    results = await asyncio.gather(*tasks)

    assert runner.shapes == [(3,)] * 4
    for value, result in zip((-1.0, 1.0, 2.0, 3.0), results, strict=True):
        np.testing.assert_array_equal(result.outputs["y"], np.full((3,), value * 2))
    assert observer.rows == [1, 1, 1, 1]


async def test_a_full_queue_rejects_at_once(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32, max_queue_size=2)
    first = await occupy(batcher, runner)  # executing, so not queued
    waiting = [submit(batcher, 1.0), submit(batcher, 2.0)]
    await until(lambda: batcher.queued == 2)

    with pytest.raises(ResourceExhaustedError, match=r"model m:1 is full \(2 requests"):
        await batcher.submit({"x": rows(3.0)}, ("y",), 1)
    assert batcher.queued == 2
    assert not runner.gate.is_set()  # rejected without waiting for the busy instance

    runner.gate.set()
    assert_own_rows(await first, -1.0)
    assert_own_rows(await waiting[0], 1.0)
    assert_own_rows(await waiting[1], 2.0)
    assert not runner.seen(3.0)


async def test_a_deadline_that_expires_in_the_queue_fails_and_never_runs(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    late = submit(batcher, 5.0, deadline=time.monotonic() + 0.04)
    await until(lambda: batcher.queued == 1)

    with pytest.raises(DeadlineExceededError, match=r"model m:1 timed out .* not executed"):
        await late
    assert batcher.queued == 0
    assert len(runner.calls) == 1  # the instance was busy the whole time

    runner.gate.set()
    assert_own_rows(await first, -1.0)
    assert_own_rows(await submit(batcher, 6.0), 6.0)
    assert not runner.seen(5.0)
    assert observer.rows == [1, 1]


async def test_a_deadline_already_past_is_rejected_at_once(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    with pytest.raises(DeadlineExceededError, match="m:1"):
        await batcher.submit({"x": rows(1.0)}, ("y",), 1, deadline=time.monotonic() - 1)
    assert batcher.queued == 0
    await asyncio.sleep(0)
    assert runner.calls == []


async def test_a_deadline_passing_during_execution_does_not_fail_the_request(make_batcher: MakeBatcher) -> None:
    """`deadline` is when execution must have *started*; a request already running must get its result."""
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    deadline = time.monotonic() + 0.03
    running = submit(batcher, 1.0, deadline=deadline)
    await until(lambda: len(runner.calls) == 1)
    assert time.monotonic() < deadline, "precondition: execution started before the deadline"
    await asyncio.sleep(deadline - time.monotonic() + 0.005)  # the deadline passes while the runner works on it
    runner.gate.set()
    assert_own_rows(await running, 1.0)
    assert observer.rows == [1]


async def test_an_unenforced_deadline_is_checked_when_the_batch_forms(make_batcher: MakeBatcher) -> None:
    """With enforce_deadline=False no timer fails the request; it is dropped from its batch at execution."""
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    deadline = time.monotonic() + 0.02
    late = submit(batcher, 5.0, deadline=deadline, enforce_deadline=False)
    on_time = submit(batcher, 6.0)
    await until(lambda: batcher.queued == 2)
    await asyncio.sleep(deadline - time.monotonic() + 0.005)
    assert not late.done()  # no timer armed: the transport would cancel the call

    runner.gate.set()
    with pytest.raises(DeadlineExceededError, match="not executed"):
        await late
    assert_own_rows(await on_time, 6.0)
    assert_own_rows(await first, -1.0)
    assert runner.batch_rows == [1, 1]
    assert not runner.seen(5.0)
    assert observer.rows == [1, 1]


async def test_an_unenforced_deadline_passing_during_execution_keeps_the_result(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    deadline = time.monotonic() + 0.03
    running = submit(batcher, 1.0, deadline=deadline, enforce_deadline=False)
    await until(lambda: len(runner.calls) == 1)
    assert time.monotonic() < deadline, "precondition: execution started before the deadline"
    await asyncio.sleep(deadline - time.monotonic() + 0.005)
    runner.gate.set()
    assert_own_rows(await running, 1.0)


async def test_a_cancelled_request_leaves_the_queue_and_never_runs(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    gone = submit(batcher, 7.0)
    stays = submit(batcher, 8.0)
    await until(lambda: batcher.queued == 2)

    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    assert batcher.queued == 1

    runner.gate.set()
    assert_own_rows(await first, -1.0)
    assert_own_rows(await stays, 8.0)
    assert runner.batch_rows == [1, 1]
    assert not runner.seen(7.0)


async def test_priority_one_runs_before_an_earlier_priority_two(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32, merge=False, priority_levels=2)
    first = await occupy(batcher, runner)
    low = submit(batcher, 2.0, priority=2)
    await until(lambda: batcher.queued == 1)
    high = submit(batcher, 1.0, priority=1)
    await until(lambda: batcher.queued == 2)
    runner.gate.set()
    await asyncio.gather(first, low, high)

    assert [call["x"][0, 0] for call in runner.calls] == [-1.0, 1.0, 2.0]
    assert_own_rows(high.result(), 1.0)
    assert_own_rows(low.result(), 2.0)


async def test_a_queue_delay_gathers_spaced_requests_into_one_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=4, max_queue_delay_us=200_000)
    started = time.monotonic()
    tasks = []
    for i in range(4):
        tasks.append(submit(batcher, float(i)))
        await asyncio.sleep(0.003)
    results = await asyncio.gather(*tasks)

    assert runner.batch_rows == [4]
    assert time.monotonic() - started < 0.15  # released when full, not when the 200 ms delay ran out
    for i, result in enumerate(results):
        assert_own_rows(result, float(i))
    assert observer.rows == [4]


async def test_a_queue_delay_releases_at_a_preferred_batch_size(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, _ = await make_batcher(runner, max_batch_size=4, max_queue_delay_us=200_000, preferred_batch_sizes=(2,))
    started = time.monotonic()
    one = submit(batcher, 1.0)
    await asyncio.sleep(0.003)
    two = submit(batcher, 2.0)
    assert_own_rows(await one, 1.0)
    assert_own_rows(await two, 2.0)
    assert runner.batch_rows == [2]
    assert time.monotonic() - started < 0.15


async def test_a_queue_delay_runs_a_lone_request_once_it_expires(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, _ = await make_batcher(runner, max_batch_size=4, max_queue_delay_us=20_000)
    started = time.monotonic()
    assert_own_rows(await submit(batcher, 1.0), 1.0)
    assert time.monotonic() - started >= 0.015
    assert runner.batch_rows == [1]


async def test_two_instances_run_two_batches_concurrently(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32, instances=2)
    first = await occupy(batcher, runner)
    second = submit(batcher, 1.0)
    await until(lambda: runner.active == 2)  # both inside the runner before either is released
    assert batcher.queued == 0
    third = submit(batcher, 2.0)
    await until(lambda: batcher.queued == 1)
    await asyncio.sleep(0.005)
    assert runner.active == 2  # no third instance
    runner.gate.set()
    assert_own_rows(await first, -1.0)
    assert_own_rows(await second, 1.0)
    assert_own_rows(await third, 2.0)
    assert runner.batch_rows == [1, 1, 1]


async def test_a_runner_error_fails_its_request_and_later_requests_still_work(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    error = InferenceFailedError("model m:1 failed: out of memory")
    runner.failures[0] = error
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    with pytest.raises(InferenceFailedError) as raised:
        await submit(batcher, 1.0)
    assert raised.value is error
    assert_own_rows(await submit(batcher, 9.0), 9.0)
    assert observer.rows == [1]  # the failed execution is not observed


async def test_one_bad_request_fails_alone_and_its_batch_mates_get_their_rows(
    make_batcher: MakeBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    runner = FakeRunner(held=True)
    runner.poison = 13.0
    batcher, observer = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    values = [float(i) for i in range(1, 17)]  # 13 is the bad one
    merged = [submit(batcher, value) for value in values]
    await until(lambda: batcher.queued == 16)
    with caplog.at_level(logging.WARNING, logger="server.batching.batcher"):
        runner.gate.set()
        assert_own_rows(await first, -1.0)
        outcomes = await asyncio.gather(*merged, return_exceptions=True)

    for value, outcome in zip(values, outcomes, strict=True):
        if value == 13.0:
            assert isinstance(outcome, InferenceFailedError)
            assert "13" in str(outcome)
        else:
            assert isinstance(outcome, RunResult)
            assert_own_rows(outcome, value)
    assert runner.batch_rows[1] == 16  # they did share an execution first
    assert len(runner.batch_rows) - 2 <= 2 * 4  # bisected: about 2 log2(16) more executions, not 16
    assert sum(observer.rows) == 1 + 15  # every answered row was observed once
    assert caplog.text.count("a merged execution failed") == 1  # one line per failed batch


async def test_a_batch_failing_for_every_request_fails_each_with_its_own_error(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    runner.poison = 5.0
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    merged = [submit(batcher, 5.0) for _ in range(4)] + [submit(batcher, 6.0)]
    await until(lambda: batcher.queued == 5)
    runner.gate.set()
    await first
    outcomes = await asyncio.gather(*merged, return_exceptions=True)
    assert [isinstance(outcome, InferenceFailedError) for outcome in outcomes] == [True] * 4 + [False]
    assert len(runner.batch_rows) - 2 <= 2 * (5 - 1)  # bounded: each part runs once


async def test_an_unexpected_runner_error_is_logged_and_returned(
    make_batcher: MakeBatcher, caplog: pytest.LogCaptureFixture
) -> None:
    runner = FakeRunner()
    runner.failures[0] = RuntimeError("session crashed")
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    with caplog.at_level(logging.ERROR, logger="server.batching.batcher"), pytest.raises(RuntimeError, match="crash"):
        await submit(batcher, 1.0)
    assert "batch execution failed" in caplog.text
    assert_own_rows(await submit(batcher, 2.0), 2.0)


async def test_outputs_that_cannot_be_split_fail_every_request_of_the_batch(make_batcher: MakeBatcher) -> None:
    class PoolingRunner(FakeRunner):
        async def run(self, inputs: Any, output_names: Any) -> RunResult:
            result = await super().run(inputs, output_names)
            return RunResult(outputs={"y": result.outputs["y"][:1]}, timings=result.timings)

    runner = PoolingRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    first = await occupy(batcher, runner)
    merged = [submit(batcher, 1.0), submit(batcher, 2.0)]
    await until(lambda: batcher.queued == 2)
    runner.gate.set()
    assert_own_rows(await first, -1.0)  # alone, nothing to split
    outcomes = await asyncio.gather(*merged, return_exceptions=True)
    assert all(isinstance(outcome, InferenceFailedError) for outcome in outcomes)
    assert "output 'y'" in str(outcomes[0])


async def test_stop_fails_queued_requests_and_lets_the_running_batch_finish(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=32)
    running = await occupy(batcher, runner)
    queued = [submit(batcher, 1.0), submit(batcher, 2.0)]
    await until(lambda: batcher.queued == 2)

    stopping = asyncio.create_task(batcher.stop())
    for task in queued:
        with pytest.raises(ModelNotReadyError, match="m:1 was unloaded"):
            await task
    assert batcher.queued == 0
    assert not running.done()
    assert not stopping.done()  # stop() waits for the running batch

    runner.gate.set()
    await stopping
    assert_own_rows(await running, -1.0)
    assert runner.batch_rows == [1]


async def test_submit_before_start_is_rejected() -> None:
    batcher = DynamicBatcher(FakeRunner(), BatchPolicy(max_batch_size=4), "m:1", Observer())
    with pytest.raises(ModelNotReadyError, match="m:1 is not started"):
        await batcher.submit({"x": rows(1.0)}, ("y",), 1)


async def test_submit_after_stop_is_rejected_at_once(make_batcher: MakeBatcher) -> None:
    batcher, _ = await make_batcher(FakeRunner(), max_batch_size=4)
    await batcher.stop()
    with pytest.raises(ModelNotReadyError):
        await asyncio.wait_for(batcher.submit({"x": rows(1.0)}, ("y",), 1), timeout=1.0)


async def test_a_request_stepping_past_the_largest_preferred_size_releases_the_batch(
    make_batcher: MakeBatcher,
) -> None:
    runner = FakeRunner()
    batcher, _ = await make_batcher(runner, max_batch_size=8, max_queue_delay_us=200_000, preferred_batch_sizes=(2,))
    started = time.monotonic()
    one = submit(batcher, 1.0)
    await asyncio.sleep(0.003)
    three = submit(batcher, 2.0, 3.0)  # 1 + 2 = 3 rows: past the preferred 2, so no reason to wait longer
    assert_own_rows(await one, 1.0)
    assert_own_rows(await three, 2.0, 3.0)
    assert runner.batch_rows == [3]
    assert time.monotonic() - started < 0.15


async def test_a_full_batch_starts_before_the_finished_batch_is_answered(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, _ = await make_batcher(runner, max_batch_size=4)
    first = await occupy(batcher, runner)
    full = [submit(batcher, float(i)) for i in range(1, 5)]
    await until(lambda: batcher.queued == 4)
    started_before_answer: list[int] = []
    first.add_done_callback(lambda _: started_before_answer.append(len(runner.calls)))

    runner.gate.set()
    await asyncio.gather(first, *full)

    assert started_before_answer == [2]  # the full batch reached the runtime before the first answer went out
    assert runner.batch_rows == [1, 4]


async def test_a_partial_batch_waits_for_the_scheduler_after_an_execution(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner(held=True)
    batcher, observer = await make_batcher(runner, max_batch_size=8)
    first = await occupy(batcher, runner)
    partial = [submit(batcher, 1.0), submit(batcher, 2.0)]
    await until(lambda: batcher.queued == 2)

    runner.gate.set()
    results = await asyncio.gather(*partial)

    assert_own_rows(await first, -1.0)
    assert [r.outputs["y"][0, 0] for r in results] == [2.0, 4.0]
    assert observer.rows == [1, 2]


def _busy_turns(count: int, busy_s: float, action: Any) -> None:
    """Run `action(i)` in `count` consecutive loop turns, each kept busy for `busy_s` (requests still arriving)."""
    loop = asyncio.get_running_loop()

    def turn(i: int) -> None:
        time.sleep(busy_s)
        action(i)
        if i + 1 < count:
            loop.call_soon(turn, i + 1)

    loop.call_soon(turn, 0)


async def test_requests_arriving_while_the_loop_is_busy_join_one_batch(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=16, max_settle_us=5_000_000)
    tasks = [submit(batcher, 0.0)]
    _busy_turns(4, 0.002, lambda i: tasks.append(submit(batcher, float(i + 1))))
    await until(lambda: len(tasks) == 5)

    results = await asyncio.gather(*tasks)

    assert observer.rows == [5]  # one execution, although the requests arrived over several turns
    for value, result in enumerate(results):
        assert_own_rows(result, float(value))


async def test_settling_is_bounded_when_the_loop_stays_busy(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=64, max_settle_us=1_000)
    tasks = [submit(batcher, 0.0)]
    _busy_turns(30, 0.002, lambda i: tasks.append(submit(batcher, float(i + 1))))
    await until(lambda: len(tasks) == 31, timeout_s=5.0)

    await asyncio.gather(*tasks)

    assert observer.rows[0] <= 3  # the first batch stopped settling after about 1 ms, not after the 60 ms burst
    assert sum(observer.rows) == 31


async def test_a_single_request_on_an_idle_loop_is_not_held_back(make_batcher: MakeBatcher) -> None:
    runner = FakeRunner()
    batcher, observer = await make_batcher(runner, max_batch_size=16, max_settle_us=10_000_000)
    started = time.perf_counter()
    assert_own_rows(await submit(batcher, 3.0), 3.0)
    assert observer.rows == [1]
    assert time.perf_counter() - started < 5.0  # quiet turns end settling at once, far below its 10 s bound
