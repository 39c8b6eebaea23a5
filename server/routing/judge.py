"""Canary verdicts (pure): one canary's window of traffic against the stable version's.

A canary fails a check when
- its error rate is above the stable's plus `max_error_rate`, one-sided at `confidence`: the
  Wilson lower bound of the canary's rate must clear the stable's rate plus the margin, so a
  handful of unlucky errors at low traffic proves nothing; or
- its p99 latency exceeds the stable's times `max_latency_ratio` (and by more than
  `min_latency_delta_s`, so that one stalled batch on a small model cannot trip it); or
- its predictions are distributed unlike the stable's: the PSI between them (measured by the drift
  monitor over the watched outputs) exceeds `max_prediction_psi`.
No verdict is given until the canary has `min_requests` requests in the window: the stateful judge
widens the window at low traffic instead, so a 1 % canary neither misfires nor sleeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from statistics import NormalDist

from server.routing.config import JudgeConfig


@dataclass(frozen=True, slots=True)
class WindowStats:
    """Traffic of one version over a window: requests answered, errors among them, latency bucket counts."""

    requests: int = 0
    errors: int = 0
    latency: tuple[int, ...] = ()
    """Successful requests per latency bucket (non-cumulative), aligned with the judge's bucket bounds."""

    def __add__(self, other: WindowStats) -> WindowStats:
        width = max(len(self.latency), len(other.latency))
        mine = self.latency + (0,) * (width - len(self.latency))
        theirs = other.latency + (0,) * (width - len(other.latency))
        return WindowStats(
            self.requests + other.requests,
            self.errors + other.errors,
            tuple(a + b for a, b in zip(mine, theirs, strict=True)),
        )

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0


class Outcome(StrEnum):
    HEALTHY = "healthy"
    FAILING = "failing"
    WAITING = "waiting"
    """Too few canary requests for a verdict."""


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    reasons: tuple[str, ...] = ()
    """Why the check failed ("error_rate", "latency"), empty otherwise."""
    evidence: dict[str, float] = field(default_factory=dict)
    """The numbers behind the verdict, for the structured event and the admin API."""


def wilson_lower(errors: int, requests: int, z: float) -> float:
    """Lower bound of the Wilson score interval for an error proportion (0 with no requests)."""
    if requests == 0:
        return 0.0
    p = errors / requests
    denominator = 1 + z * z / requests
    centre = p + z * z / (2 * requests)
    spread = z * math.sqrt(p * (1 - p) / requests + z * z / (4 * requests * requests))
    return max(0.0, (centre - spread) / denominator)


def quantile(latency: Sequence[int], bounds: Sequence[float], q: float) -> float | None:
    """The q-quantile of bucketed latencies, interpolated inside the bucket (as Prometheus' histogram_quantile).

    `bounds` are the finite upper bounds; the last count is the +Inf bucket, reported as the last bound.
    """
    total = sum(latency)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(latency):
        upper = bounds[index] if index < len(bounds) else bounds[-1]
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return bounds[-1]


@dataclass(frozen=True, slots=True)
class PredictionDistance:
    """How differently the canary predicts: the largest PSI against the stable, and on which watched output."""

    psi: float
    output: str


def judge_canary(
    stable: WindowStats,
    canary: WindowStats,
    config: JudgeConfig,
    bounds: Sequence[float],
    predictions: PredictionDistance | None = None,
) -> Verdict:
    """The verdict on `canary`'s window against `stable`'s window over the same time span; `predictions`
    is None until both versions have predicted enough to compare."""
    evidence: dict[str, float] = {
        "canary_requests": canary.requests,
        "canary_errors": canary.errors,
        "stable_requests": stable.requests,
        "stable_errors": stable.errors,
    }
    if canary.requests < config.min_requests:
        return Verdict(Outcome.WAITING, evidence=evidence)
    reasons = []
    z = NormalDist().inv_cdf(config.confidence)
    lower = wilson_lower(canary.errors, canary.requests, z)
    limit = stable.error_rate + config.max_error_rate
    evidence.update(canary_error_rate=canary.error_rate, canary_error_rate_lower=lower, error_rate_limit=limit)
    if lower > limit:
        reasons.append("error_rate")
    canary_p99 = quantile(canary.latency, bounds, 0.99)
    stable_p99 = quantile(stable.latency, bounds, 0.99)
    if canary_p99 is not None and stable_p99 is not None and stable.requests >= config.min_requests:
        evidence.update(canary_p99_s=canary_p99, stable_p99_s=stable_p99)
        slower = canary_p99 > stable_p99 * config.max_latency_ratio
        if slower and canary_p99 - stable_p99 > config.min_latency_delta_s:
            reasons.append("latency")
    if predictions is not None and config.max_prediction_psi > 0:
        evidence.update(prediction_psi=predictions.psi)
        if predictions.psi > config.max_prediction_psi:
            reasons.append("predictions")  # which output: PredictionDistance.output, logged by the judge
    return Verdict(Outcome.FAILING if reasons else Outcome.HEALTHY, tuple(reasons), evidence)


def next_step(steps: Sequence[int], weight: int, total: int) -> int | None:
    """The canary's next weight in percent of `total` on a healthy verdict, or None when it is at the last step."""
    share = 100 * weight / total if total else 0
    for step in steps:
        if step > share + 1e-9:
            return step
    return None
