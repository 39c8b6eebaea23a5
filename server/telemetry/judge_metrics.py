"""Prometheus families of the canary judge: checks, failed-check streaks, rollbacks."""

from __future__ import annotations

from itertools import combinations

from prometheus_client import CollectorRegistry, Counter, Gauge

from server.routing.changes import ChangeKind, RoutingChange

#: The judge's reasons, alone or joined by "+" in this order; an operator's rollback is counted as "manual"
#: (its free text stays in the state and log).
GATES = ("error_rate", "latency", "predictions")
JUDGE_REASONS = frozenset("+".join(chosen) for size in (1, 2, 3) for chosen in combinations(GATES, size))


class JudgeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.checks = Counter(
            "inference_canary_checks",
            "Canary checks by outcome: healthy, failing, or waiting (too few canary requests for a verdict).",
            ("model", "version", "outcome"),
            registry=registry,
        )
        self.failed_checks = Gauge(
            "inference_canary_failed_checks",
            "Consecutive failed checks of the canary; it is rolled back at the judge's failure_limit.",
            ("model", "version"),
            multiprocess_mode="livemostrecent",
            registry=registry,
        )
        self.rollbacks = Counter(
            "inference_rollbacks",
            "Versions taken out of routing (weight 0), by reason: error_rate, latency, predictions, their "
            "combinations joined by + (e.g. error_rate+latency), or manual.",
            ("model", "version", "reason"),
            registry=registry,
        )
        self.promotions = Counter(
            "inference_promotions",
            "Canary weight raised to the next step of a progressive promotion (or promoted by hand).",
            ("model", "version"),
            registry=registry,
        )

    def changed(self, change: RoutingChange) -> None:
        """Count a routing change once, where it is recorded (the state's owner)."""
        if change.kind is ChangeKind.ROLLBACK:
            reason = change.reason if change.reason in JUDGE_REASONS else "manual"
            self.rollbacks.labels(change.model, str(change.version), reason).inc()
        elif change.kind is ChangeKind.PROMOTE:
            self.promotions.labels(change.model, str(change.version)).inc()
