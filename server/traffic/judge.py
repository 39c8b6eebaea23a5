"""The canary judge: every interval, each canary's window of traffic against the stable version's.

It reads cumulative per-version totals (what a scrape reads: see telemetry.totals), keeps the
per-interval differences for the last few windows, and asks the pure `judge_canary` for a
verdict. `failure_limit` failed checks in a row, over windows that do not overlap, roll the
canary back (weight 0, persisted); a
healthy check advances a progressive promotion by one step. One judge serves every model whose
[routing.judge] is enabled; under --workers it runs in the supervisor, on every worker's traffic.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from server.errors import ServerError
from server.routing.changes import ChangeKind, RoutingChange
from server.routing.config import JudgeConfig
from server.routing.judge import Outcome, PredictionDistance, Verdict, WindowStats, judge_canary, next_step
from server.telemetry.judge_metrics import JudgeMetrics
from server.telemetry.metrics import LATENCY_BUCKETS
from server.telemetry.totals import VersionTotals

log = logging.getLogger(__name__)

#: At low traffic a window may stretch to this many window lengths to reach min_requests.
MAX_WINDOW_STRETCH = 10
#: The longest the judge sleeps: how late it may notice a newly routed model.
IDLE_WAIT_S = 1.0


@dataclass(frozen=True, slots=True)
class JudgeTarget:
    """What the judge needs to know about one routed model."""

    model: str
    fingerprint: str
    weights: Mapping[int, int]
    """Effective weights now."""
    stable: int | None
    canaries: tuple[int, ...]
    config: JudgeConfig
    paused: bool = False


@dataclass(frozen=True, slots=True)
class CanaryStatus:
    """The judge's latest view of one canary (shown by the admin API)."""

    verdict: Verdict
    failed_checks: int
    checked_at: str


Totals = Mapping[tuple[str, int], VersionTotals]


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _delta(current: VersionTotals, previous: VersionTotals | None) -> WindowStats:
    if previous is None or current.requests < previous.requests:  # first sight, or counters reset
        return WindowStats(latency=(0,) * len(current.latency))
    return WindowStats(
        current.requests - previous.requests,
        current.errors - previous.errors,
        tuple(a - b for a, b in zip(current.latency, previous.latency, strict=True)),
    )


class CanaryJudge:
    def __init__(
        self,
        *,
        targets: Callable[[], list[JudgeTarget]],
        totals: Callable[[], Totals],
        apply: Callable[[RoutingChange], Awaitable[None]],
        metrics: JudgeMetrics,
        predictions: Callable[[str, int, int, int], tuple[float, str] | None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 0.05,
    ) -> None:
        """`predictions(model, stable, canary, min_samples)`: the largest PSI of the canary's predictions against
        the stable's and the output it was on (the drift monitor's), or None until both predicted enough."""
        self._predictions = predictions
        self._targets = targets
        self._totals = totals
        self._apply = apply
        self._metrics = metrics
        self._clock = clock
        self._tick_s = tick_s
        self._last_check: dict[str, float] = {}
        self._previous: dict[tuple[str, int], VersionTotals] = {}
        self._history: dict[tuple[str, int], deque[tuple[float, WindowStats]]] = {}
        self._failures: dict[tuple[str, int], int] = {}
        self._counted_at: dict[tuple[str, int], float] = {}
        self._fingerprints: dict[str, str] = {}
        self.status: dict[tuple[str, int], CanaryStatus] = {}
        """The latest verdict on every canary, for the admin API."""

    async def run(self) -> None:
        """Check whatever is due, forever; an error in one pass is logged and the next pass goes on."""
        while True:
            try:
                await self.check()
            except Exception:
                log.exception("canary judge pass failed")
            await asyncio.sleep(self._wait_s())

    def _wait_s(self) -> float:
        """Until the next model is due: at least `tick_s`, at most IDLE_WAIT_S (new models are noticed then)."""
        now = self._clock()
        due = [
            self._last_check.get(t.model, -1e18) + t.config.interval_s - now
            for t in self._targets()
            if t.config.enabled
        ]
        return min(max(min(due, default=IDLE_WAIT_S), self._tick_s), IDLE_WAIT_S)

    async def check(self) -> list[RoutingChange]:
        """One pass: the models whose interval is up get their verdicts; returns the changes applied."""
        now = self._clock()
        targets = [target for target in self._targets() if target.config.enabled]
        self._forget_changed_models({target.model: target.fingerprint for target in targets})
        due = [
            target for target in targets if now - self._last_check.get(target.model, -1e18) >= target.config.interval_s
        ]
        if not due:
            return []
        totals = self._totals()
        changes = []
        for target in due:
            self._last_check[target.model] = now
            self._record(target, totals, now)
            if not target.paused and target.stable is not None:
                changes.extend(self._judge(target, now))
        applied = []
        for change in changes:
            try:
                await self._apply(change)
            except ServerError as error:  # e.g. a reload changed the routing meanwhile: the next pass sees it
                log.warning(
                    "canary judge change not applied",
                    extra={"model": change.model, "version": change.version, "error": str(error)},
                )
                continue
            applied.append(change)
        return applied

    def _forget_changed_models(self, current: dict[str, str]) -> None:
        """Start afresh for a model whose [routing] changed, and forget models no longer judged."""
        for model, known in list(self._fingerprints.items()):
            if current.get(model) == known:
                continue
            del self._fingerprints[model]
            self._last_check.pop(model, None)
            for per_version in (self.status, self._history, self._failures, self._counted_at, self._previous):
                for key in [key for key in per_version if key[0] == model]:
                    del per_version[key]
        self._fingerprints.update(current)

    def _record(self, target: JudgeTarget, totals: Totals, now: float) -> None:
        horizon = now - target.config.window_s * MAX_WINDOW_STRETCH
        for version in target.weights:
            key = (target.model, version)
            current = totals.get(key)
            if current is None:
                continue
            history = self._history.setdefault(key, deque())
            history.append((now, _delta(current, self._previous.get(key))))
            self._previous[key] = current
            while history and history[0][0] < horizon:
                history.popleft()

    def _window(self, target: JudgeTarget, canary: int, now: float) -> tuple[WindowStats, WindowStats]:
        """(stable, canary) stats over the window, stretched back until the canary has min_requests."""
        config = target.config
        canary_history = list(self._history.get((target.model, canary), ()))
        start = now - config.window_s
        taken = [stats for at, stats in canary_history if at > start]
        total = sum((stats for stats in taken), WindowStats())
        older = [(at, stats) for at, stats in canary_history if at <= start]
        while older and total.requests < config.min_requests:
            at, stats = older.pop()
            total = total + stats
            start = at - 1e-9
        assert target.stable is not None
        stable_history = self._history.get((target.model, target.stable), ())
        stable = sum((stats for at, stats in stable_history if at > start), WindowStats())
        return stable, total

    def _judge(self, target: JudgeTarget, now: float) -> list[RoutingChange]:
        changes = []
        for canary in target.canaries:
            key = (target.model, canary)
            stable, observed = self._window(target, canary, now)
            distance = None
            if self._predictions is not None and target.stable is not None and target.config.max_prediction_psi > 0:
                found = self._predictions(target.model, target.stable, canary, target.config.min_requests)
                distance = None if found is None else PredictionDistance(*found)
            verdict = judge_canary(stable, observed, target.config, LATENCY_BUCKETS, distance)
            failures = self._failures.get(key, 0)
            if verdict.outcome is Outcome.FAILING:
                # Consecutive checks share most of their window: one bad stretch of traffic would count
                # again at every interval. Another failure counts only once its window no longer
                # overlaps the last counted one (Flagger's checks likewise query one interval each).
                if now - self._counted_at.get(key, -1e18) >= target.config.window_s:
                    failures += 1
                    self._counted_at[key] = now
            elif verdict.outcome is Outcome.HEALTHY:
                failures = 0
                self._counted_at.pop(key, None)
            self._failures[key] = failures
            self.status[key] = CanaryStatus(verdict, failures, _now_utc())
            self._metrics.checks.labels(target.model, str(canary), verdict.outcome.value).inc()
            self._metrics.failed_checks.labels(target.model, str(canary)).set(failures)
            if verdict.outcome is Outcome.FAILING and failures >= target.config.failure_limit:
                changes.append(self._rollback(target, canary, verdict, distance))
            elif verdict.outcome is Outcome.HEALTHY and target.config.steps:
                promotion = self._promote(target, canary)
                if promotion is not None:
                    changes.append(promotion)
        return changes

    def _rollback(
        self, target: JudgeTarget, canary: int, verdict: Verdict, predictions: PredictionDistance | None
    ) -> RoutingChange:
        reason = "+".join(verdict.reasons)
        log.warning(
            "canary rolled back",
            extra={
                "event": "canary_rollback",
                "model": target.model,
                "version": canary,
                "stable_version": target.stable,
                "reason": reason,
                "evidence": verdict.evidence,
                # which watched output differed most (the evidence holds only numbers)
                "prediction_output": None if predictions is None else predictions.output,
            },
        )
        self._forget(target.model, canary)
        return RoutingChange(
            ChangeKind.ROLLBACK,
            target.model,
            target.fingerprint,
            version=canary,
            reason=reason,
            at=_now_utc(),
            evidence=dict(verdict.evidence),
        )

    def _promote(self, target: JudgeTarget, canary: int) -> RoutingChange | None:
        total = sum(target.weights.values())
        step = next_step(target.config.steps, target.weights.get(canary, 0), total)
        if step is None or target.stable is None:
            return None
        weights = {version: 0 for version in target.weights}
        weights[canary] = step
        weights[target.stable] = 100 - step
        log.info(
            "canary promoted",
            extra={"event": "canary_promotion", "model": target.model, "version": canary, "weight": step},
        )
        self._forget(target.model, canary)  # the next verdict is on traffic at the new weight
        return RoutingChange(ChangeKind.PROMOTE, target.model, target.fingerprint, version=canary, weights=weights)

    def _forget(self, model: str, canary: int) -> None:
        self._history.pop((model, canary), None)
        self._failures.pop((model, canary), None)
        self._counted_at.pop((model, canary), None)
