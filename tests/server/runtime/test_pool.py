"""server.runtime.pool.InferencePool: results and errors reach the loop, concurrency is bounded, shutdown drains."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref

import numpy as np
import pytest

from server.runtime.pool import InferencePool
from tests.support.polling import until


async def test_results_and_errors_come_back_to_the_loop_from_worker_threads() -> None:
    pool = InferencePool(2)
    try:
        assert await pool.submit(lambda a, b: a + b, 2, 3) == 5
        assert await pool.submit(threading.current_thread) is not threading.current_thread()

        def fail() -> None:
            raise ValueError("boom")

        with pytest.raises(ValueError, match="boom"):
            await pool.submit(fail)
    finally:
        pool.shutdown()


async def test_at_most_size_jobs_run_at_once() -> None:
    pool = InferencePool(2)
    try:
        assert await peak_concurrency(pool, 8) == 2
    finally:
        pool.shutdown()


async def test_a_cancelled_caller_does_not_break_the_pool() -> None:
    pool = InferencePool(1)
    release = threading.Event()
    try:
        blocked = pool.submit(release.wait, 5)
        blocked.cancel()
        release.set()
        assert await pool.submit(lambda: "next") == "next"  # the cancelled job's result was dropped quietly
    finally:
        pool.shutdown()


async def test_shutdown_finishes_queued_jobs_and_refuses_new_ones() -> None:
    pool = InferencePool(1)
    done: list[int] = []
    futures = [pool.submit(lambda i=i: done.append(i)) for i in range(5)]
    await asyncio.gather(*futures)
    pool.shutdown()
    assert done == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(lambda: None)


def test_a_job_that_outlives_its_event_loop_does_not_kill_the_thread() -> None:
    pool = InferencePool(1)
    release = threading.Event()

    async def start_and_leave() -> None:
        pool.submit(release.wait, 5)  # never awaited: the loop closes while it runs

    async def next_job() -> str:
        return await asyncio.wait_for(pool.submit(lambda: "next"), 5)

    try:
        asyncio.run(start_and_leave())
        release.set()
        assert asyncio.run(next_job()) == "next"
    finally:
        pool.shutdown()


def test_a_pool_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="at least one thread"):
        InferencePool(0)


async def test_an_idle_thread_keeps_nothing_of_its_last_job() -> None:
    # A worker thread used to hold its last job's arguments and result until its next job: with large
    # requests, every idle inference thread kept its last batch's inputs and outputs (hundreds of MB) alive.
    pool = InferencePool(2)
    try:
        inputs = np.ones(1024, np.float32)
        output = await pool.submit(lambda array: array * 2, inputs)
        watched = [weakref.ref(inputs), weakref.ref(output)]
        del inputs, output
        await asyncio.sleep(0.05)  # the thread has moved past the job
        gc.collect()
        assert [ref() is None for ref in watched] == [True, True]
    finally:
        pool.shutdown()


async def peak_concurrency(pool: InferencePool, jobs: int) -> int:
    """How many of `jobs` blocking jobs the pool ran at once."""
    running = 0
    peak = 0
    lock = threading.Lock()

    def job() -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1

    await asyncio.gather(*(pool.submit(job) for _ in range(jobs)))
    return peak


def live_workers(name: str) -> int:
    return sum(1 for thread in threading.enumerate() if thread.name.startswith(f"{name}_"))


async def test_reserved_instances_each_get_a_thread_beyond_the_minimum() -> None:
    # A model with more instances than the minimum must not queue for threads behind another model's jobs.
    pool = InferencePool(2, name="reserving")
    try:
        pool.reserve(3)
        pool.reserve(2)
        assert pool.size == 5
        assert await peak_concurrency(pool, 10) == 5
        pool.release(2)
        assert pool.size == 3
        assert await peak_concurrency(pool, 10) == 3
        pool.release(3)
        assert pool.size == 2  # never below the minimum
        assert await peak_concurrency(pool, 6) == 2
        assert until(lambda: live_workers("reserving") == 2)  # the surplus threads left
    finally:
        pool.shutdown()
    assert live_workers("reserving") == 0


async def test_reservations_before_the_first_job_size_the_pool_when_it_starts() -> None:
    pool = InferencePool(1, name="prereserved")
    try:
        pool.reserve(4)
        assert live_workers("prereserved") == 0  # threads start with the first job
        assert await peak_concurrency(pool, 8) == 4
    finally:
        pool.shutdown()
