"""From raw request samples to a level's numbers: throughput, percentiles, windows, stability."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import numpy.typing as npt

from loadtest.engines.python_engine import LoadPlan, Samples
from loadtest.results import LatencySummary, LevelResult, WindowResult

_PERCENTILES = (50, 90, 95, 99, 99.9)
#: Fewer samples than this in a window make its latency too noisy to judge stability by.
_MIN_WINDOW_SAMPLES = 20


def latency_summary(latencies_s: npt.NDArray[np.float64]) -> LatencySummary | None:
    if latencies_s.size == 0:
        return None
    ms = latencies_s * 1000.0
    p50, p90, p95, p99, p999 = (float(v) for v in np.percentile(ms, _PERCENTILES))
    return LatencySummary(
        count=int(ms.size),
        mean_ms=float(ms.mean()),
        p50_ms=p50,
        p90_ms=p90,
        p95_ms=p95,
        p99_ms=p99,
        p999_ms=p999,
        max_ms=float(ms.max()),
    )


def _in_measurement(samples: Samples, mode: str) -> npt.NDArray[np.bool_]:
    # Closed loop counts what completed in the window (as perf_analyzer does); open loop counts
    # what was scheduled in it, so a late response still charges its full delay to the server.
    when = samples.finished if mode == "closed" else samples.sent
    return (when >= samples.measure_start) & (when < samples.measure_end)


def _windows(
    samples: Samples, mode: str, ok: npt.NDArray[np.bool_], latency: npt.NDArray[np.float64], count: int, batch: int
) -> list[WindowResult]:
    when = samples.finished if mode == "closed" else samples.sent
    edges = np.linspace(samples.measure_start, samples.measure_end, count + 1)
    windows = []
    for low, high in itertools.pairwise(edges):
        inside = (when >= low) & (when < high)
        good = latency[inside & ok]
        duration = float(high - low)
        windows.append(
            WindowResult(
                duration_s=duration,
                requests=int(inside.sum()),
                errors=int((inside & ~ok).sum()),
                throughput_infer_per_s=good.size * batch / duration if duration > 0 else 0.0,
                p50_ms=float(np.percentile(good, 50) * 1000) if good.size else 0.0,
                p99_ms=float(np.percentile(good, 99) * 1000) if good.size else 0.0,
            )
        )
    return windows


def is_stable(windows: list[WindowResult], tolerance_pct: float) -> bool:
    """Throughput and median latency of every window within ±tolerance of their mean."""
    if len(windows) < 2:
        return True

    def within(values: list[float]) -> bool:
        mean = sum(values) / len(values)
        return mean == 0 or all(abs(v - mean) <= mean * tolerance_pct / 100 for v in values)

    stable = within([w.throughput_infer_per_s for w in windows])
    if all(w.requests - w.errors >= _MIN_WINDOW_SAMPLES for w in windows):
        stable = stable and within([w.p50_ms for w in windows])
    return stable


def summarize(samples: Samples, plan: LoadPlan, batch_size: int, windows: int, tolerance_pct: float) -> LevelResult:
    """The LevelResult of one Python-engine level (server breakdown is added by the caller)."""
    measured = _in_measurement(samples, plan.mode)
    codes = np.asarray(samples.codes, dtype=object)
    ok_all = codes == "OK"
    latency = samples.finished - samples.sent
    ok = measured & ok_all
    failed = measured & ~ok_all
    duration = samples.measure_end - samples.measure_start
    ok_count = int(ok.sum())
    window_results = _windows(samples, plan.mode, ok_all, latency, windows, batch_size)
    notes = _reachability_notes(samples)
    if plan.mode == "open":
        offered = plan.level * duration
        sent = int(measured.sum())
        if sent < 0.9 * offered:
            notes.append(
                f"the client sent {sent} of {offered:.0f} scheduled requests: the load generator was saturated"
            )
    return LevelResult(
        mode=plan.mode,
        level=plan.level,
        engine="python",
        batch_size=batch_size,
        duration_s=duration,
        requests_ok=ok_count,
        requests_failed=int(failed.sum()),
        errors_by_code=dict(Counter(str(code) for code in codes[failed])),
        throughput_req_per_s=ok_count / duration,
        throughput_infer_per_s=ok_count * batch_size / duration,
        latency=latency_summary(latency[ok]),
        windows=window_results,
        stable=is_stable(window_results, tolerance_pct),
        notes=notes,
        total_ok=int(ok_all.sum()),
        unreachable=samples.stopped,
    )


def _reachability_notes(samples: Samples) -> list[str]:
    notes = []
    unreachable = "every request failed as unreachable (UNAVAILABLE or a connection error)"
    if samples.stopped:
        notes.append(
            f"stopped early: {unreachable} for {samples.unreachable_s or 0:.1f} s, "
            "so the client backed off and gave up on the server"
        )
    elif samples.unreachable_s is not None:
        notes.append(
            f"the server stopped answering {samples.unreachable_s:.1f} s before the level ended: since then "
            f"{unreachable}, and the client backed off to one probe at a time"
        )
    elif samples.processes_gave_up:
        notes.append(
            f"{samples.processes_gave_up} of {samples.processes} client processes stopped early: "
            "the server was unreachable from them"
        )
    if samples.not_sent:
        notes.append(
            f"{samples.not_sent} scheduled requests were not sent while backing off from an unreachable server"
        )
    return notes
