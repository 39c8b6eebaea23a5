"""The Python engine: asyncio gRPC clients in several processes, every response's status checked.

Closed loop: a fixed number of requests in flight. Open loop: requests are sent at
scheduled times (constant spacing or Poisson arrivals) whether or not earlier ones
have finished, and latency counts from the scheduled time, so a slow server cannot
hide its queueing by slowing the load down (coordinated omission).

A server that stops answering is probed with backoff instead of loaded, and the level stops once it has been
unreachable for `LoadPlan.max_unreachable_s` (see `reachability`).
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

from loadtest.engines.reachability import GIVE_UP_S, Reachability
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
    max_unreachable_s: float = GIVE_UP_S
    """Stop once every request has failed as unreachable (UNAVAILABLE, connection errors) for this long."""


@dataclass(frozen=True, slots=True)
class Samples:
    """Every request of a level: when it was (scheduled to be) sent, when it finished, its status."""

    sent: npt.NDArray[np.float64]
    finished: npt.NDArray[np.float64]
    codes: list[str]
    measure_start: float
    measure_end: float
    unreachable_s: float | None = None
    """Set when every client process ended with the server unreachable: for how long (the shortest)."""
    stopped: bool = False
    """Every client process gave up on an unreachable server, before the level's end."""
    processes_gave_up: int = 0
    processes: int = 1
    not_sent: int = 0
    """Open loop: scheduled requests not sent while backing off from an unreachable server."""


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


#: One process's result: send times, finish times, codes, requests not sent, seconds unreachable at the end (None if
#: the server answered), and whether it gave up.
_Outcome = tuple[list[float], list[float], list[str], int, float | None, bool]
#: Per process in the shared counters: successes, failures, and 1 once it gave up on an unreachable server.
_SLOTS = 3


async def _drive(
    address: str, payload: bytes, plan: LoadPlan, share: _Share, start_at: float, counters: Any
) -> _Outcome:
    sent: list[float] = []
    finished: list[float] = []
    codes: list[str] = []
    reach = Reachability(plan.max_unreachable_s)
    end_at = start_at + plan.warmup_s + plan.measure_s
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    async with grpc.aio.insecure_channel(address, options=options) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), min(_READY_TIMEOUT_S, plan.max_unreachable_s))
        except TimeoutError:  # the server went away before this level: nothing to measure
            counters[_SLOTS * share.index + 2] = 1
            return sent, finished, codes, 0, plan.max_unreachable_s, True
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
            reach.record(code)
            counters[_SLOTS * share.index + (code != "OK")] += 1

        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        not_sent = 0
        if plan.mode == "closed":
            await _closed_loop(one, plan, share, end_at, reach)
        else:
            not_sent = await _open_loop(one, plan, share, start_at, end_at, reach)
        if reach.gave_up:  # tell the parent now, so it stops waiting for the end of the level
            counters[_SLOTS * share.index + 2] = 1
    return sent, finished, codes, not_sent, reach.unreachable_s if reach.down else None, reach.gave_up


async def _closed_loop(
    one: Callable[[float], Coroutine[Any, Any, None]], plan: LoadPlan, share: _Share, end_at: float, reach: Reachability
) -> None:
    budget = [plan.max_requests]
    probe = asyncio.Lock()

    async def loop() -> None:
        while time.monotonic() < end_at and budget[0] > 0 and not reach.gave_up:
            if reach.down:
                # Backing off: the loops take turns, so the process sends one probe per delay, not one per loop.
                async with probe:
                    if reach.gave_up:
                        return
                    if reach.down:
                        await asyncio.sleep(min(reach.next_delay(), max(0.0, end_at - time.monotonic())))
                        if time.monotonic() >= end_at or reach.gave_up:
                            return
                        budget[0] -= 1
                        await one(time.monotonic())
                continue
            budget[0] -= 1
            await one(time.monotonic())

    await asyncio.gather(*(loop() for _ in range(share.concurrency)))


async def _open_loop(
    one: Callable[[float], Coroutine[Any, Any, None]],
    plan: LoadPlan,
    share: _Share,
    start_at: float,
    end_at: float,
    reach: Reachability,
) -> int:
    """Send on schedule; return how many scheduled requests were not sent because the server was unreachable."""
    rng = random.Random(share.index)
    tasks: set[asyncio.Task[None]] = set()
    when = start_at + share.phase_s
    probe_at = -math.inf
    not_sent = 0
    for _ in range(plan.max_requests):
        if when >= end_at or reach.gave_up:
            break
        delay = when - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        if reach.down and when < probe_at:
            not_sent += 1  # backing off: only one scheduled request per delay goes out, as a probe
        elif len(tasks) < _MAX_OUTSTANDING:
            if reach.down:
                probe_at = when + reach.next_delay()
            task = asyncio.ensure_future(one(when))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        gap = rng.expovariate(share.rate) if plan.arrival == "poisson" else 1.0 / share.rate
        when += gap
    if tasks:
        await asyncio.wait(tasks, timeout=plan.timeout_s + 5)
    return not_sent


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
    counters = context.RawArray("q", _SLOTS * len(shares))
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

        def all_gave_up() -> bool:
            return all(counters[2::_SLOTS])

        for moment, hook in ((measure_start, on_measure_start), (measure_end, on_measure_end)):
            while (now := time.monotonic()) < moment and not all_gave_up():
                if on_tick is not None:
                    on_tick(max(0.0, now - start_at), sum(counters[0::_SLOTS]), sum(counters[1::_SLOTS]))
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
    unreachable = [r[4] for r in results if r[4] is not None]
    gave_up = sum(r[5] for r in results)
    return Samples(
        sent=sent,
        finished=finished,
        codes=codes,
        measure_start=measure_start,
        measure_end=measure_end,
        unreachable_s=min(unreachable) if unreachable and len(unreachable) == len(results) else None,
        stopped=gave_up == len(results),
        processes_gave_up=gave_up,
        processes=len(results),
        not_sent=sum(r[3] for r in results),
    )


def expected_requests(plan: LoadPlan) -> float:
    """Requests an open-loop plan schedules during measurement (for sanity checks)."""
    return math.floor(plan.level * plan.measure_s)
