"""The Python engine: asyncio gRPC clients in several processes, every response's status checked.

Closed loop: a fixed number of requests in flight. Open loop: requests are sent at
scheduled times (constant spacing or Poisson arrivals) whether or not earlier ones
have finished, and latency counts from the scheduled time, so a slow server cannot
hide its queueing by slowing the load down (coordinated omission).
"""

from __future__ import annotations

import asyncio
import gc
import math
import multiprocessing
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import ModuleType
from typing import Any, Literal

import grpc
import numpy as np
import numpy.typing as npt

from loadtest.errors import LoadTestError
from loadtest.target import INFER_METHOD

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # the standard loop works too, just slower
    uvloop = None

_READY_TIMEOUT_S = 60.0
#: Open-loop requests one process keeps in flight at most; past that the server is hopelessly behind.
_MAX_OUTSTANDING = 20_000


@dataclass(frozen=True, slots=True)
class LoadPlan:
    mode: Literal["closed", "open"]
    level: float
    """Requests in flight (closed) or requests per second (open)."""
    warmup_s: float
    measure_s: float
    processes: int
    timeout_s: float
    arrival: Literal["constant", "poisson"] = "constant"
    max_requests: int = 2_000_000
    """Per process: a hard bound on the number of requests sent."""


@dataclass(frozen=True, slots=True)
class Samples:
    """Every request of a level: when it was (scheduled to be) sent, when it finished, its status."""

    sent: npt.NDArray[np.float64]
    finished: npt.NDArray[np.float64]
    codes: list[str]
    measure_start: float
    measure_end: float


@dataclass(frozen=True, slots=True)
class _Share:
    """One process's part of the plan."""

    concurrency: int
    rate: float
    phase_s: float
    index: int


def _shares(plan: LoadPlan) -> list[_Share]:
    if plan.mode == "closed":
        total = int(plan.level)
        count = max(1, min(plan.processes, total))
        return [_Share(total // count + (i < total % count), 0.0, 0.0, i) for i in range(count)]
    count = max(1, plan.processes)
    rate = plan.level / count
    # Constant arrivals: processes interleave evenly instead of all sending at the same instants.
    return [_Share(0, rate, i / plan.level, i) for i in range(count)]


async def _drive(
    address: str, payload: bytes, plan: LoadPlan, share: _Share, start_at: float, counters: Any
) -> tuple[list[float], list[float], list[str]]:
    sent: list[float] = []
    finished: list[float] = []
    codes: list[str] = []
    end_at = start_at + plan.warmup_s + plan.measure_s
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), _READY_TIMEOUT_S)
        # Bytes in, bytes out: no protobuf work in the client.
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(INFER_METHOD)

        async def one(when: float) -> None:
            try:
                await call(payload, timeout=plan.timeout_s)
                code = "OK"
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            except Exception as error:
                code = f"CLIENT_{type(error).__name__}"
            sent.append(when)
            finished.append(time.monotonic())
            codes.append(code)
            counters[2 * share.index + (code != "OK")] += 1

        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        if plan.mode == "closed":
            budget = [plan.max_requests]

            async def loop() -> None:
                while time.monotonic() < end_at and budget[0] > 0:
                    budget[0] -= 1
                    await one(time.monotonic())

            await asyncio.gather(*(loop() for _ in range(share.concurrency)))
        else:
            await _open_loop(one, plan, share, start_at, end_at)
    return sent, finished, codes


async def _open_loop(
    one: Callable[[float], Coroutine[Any, Any, None]], plan: LoadPlan, share: _Share, start_at: float, end_at: float
) -> None:
    rng = random.Random(share.index)
    tasks: set[asyncio.Task[None]] = set()
    when = start_at + share.phase_s
    for _ in range(plan.max_requests):
        if when >= end_at:
            break
        delay = when - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) < _MAX_OUTSTANDING:
            task = asyncio.ensure_future(one(when))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        gap = rng.expovariate(share.rate) if plan.arrival == "poisson" else 1.0 / share.rate
        when += gap
    if tasks:
        await asyncio.wait(tasks, timeout=plan.timeout_s + 5)


def _worker(address: str, payload: bytes, plan: LoadPlan, share: _Share, counters: Any, connection: Connection) -> None:
    runner: Callable[..., Any] = uvloop.run if uvloop is not None else asyncio.run
    # The client's own garbage collections would show up as server latency: keep the objects of
    # start-up (imports) out of them, so a full collection takes well under a millisecond.
    gc.collect()
    gc.freeze()
    try:
        connection.send("ready")
        start_at = connection.recv()
        result = runner(_drive(address, payload, plan, share, start_at, counters))
        connection.send(("ok", result))
    except Exception as error:
        connection.send(("error", f"{type(error).__name__}: {error}"))
    finally:
        connection.close()


def run_python_load(
    address: str,
    payload: bytes,
    plan: LoadPlan,
    on_tick: Callable[[float, int, int], None] | None = None,
    on_measure_start: Callable[[], None] | None = None,
    on_measure_end: Callable[[], None] | None = None,
) -> Samples:
    """Run one load level and return every request's timing and status.

    `on_measure_start`/`on_measure_end` run when the measurement window opens and closes
    (e.g. to snapshot server statistics); `on_tick` gets the seconds since the load started and the
    numbers of successful and failed requests so far, for progress displays.
    """
    if plan.level <= 0:
        raise LoadTestError(f"load level must be positive, got {plan.level}")
    context = multiprocessing.get_context("spawn")
    shares = _shares(plan)
    counters = context.RawArray("q", 2 * len(shares))
    workers = []
    for share in shares:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(address, payload, plan, share, counters, child), daemon=True)
        process.start()
        child.close()
        workers.append((process, parent))
    try:
        for _, parent in workers:
            if not parent.poll(_READY_TIMEOUT_S) or parent.recv() != "ready":
                raise LoadTestError("a load-generator process did not start")
        start_at = time.monotonic() + 0.3
        for _, parent in workers:
            parent.send(start_at)
        measure_start = start_at + plan.warmup_s
        measure_end = measure_start + plan.measure_s
        deadline = measure_end + plan.timeout_s + 30
        for moment, hook in ((measure_start, on_measure_start), (measure_end, on_measure_end)):
            while (now := time.monotonic()) < moment:
                if on_tick is not None:
                    on_tick(max(0.0, now - start_at), sum(counters[0::2]), sum(counters[1::2]))
                time.sleep(min(0.25, moment - now))
            if hook is not None:
                hook()
        results = []
        for _, parent in workers:
            if not parent.poll(max(0.0, deadline - time.monotonic())):
                raise LoadTestError("a load-generator process did not finish in time")
            status, value = parent.recv()
            if status != "ok":
                raise LoadTestError(f"load generator failed: {value}")
            results.append(value)
    finally:
        for process, parent in workers:
            parent.close()
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
    sent = np.concatenate([np.asarray(r[0], dtype=np.float64) for r in results])
    finished = np.concatenate([np.asarray(r[1], dtype=np.float64) for r in results])
    codes = [code for r in results for code in r[2]]
    return Samples(sent=sent, finished=finished, codes=codes, measure_start=measure_start, measure_end=measure_end)


def expected_requests(plan: LoadPlan) -> float:
    """Requests an open-loop plan schedules during measurement (for sanity checks)."""
    return math.floor(plan.level * plan.measure_s)
