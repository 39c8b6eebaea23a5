"""Prometheus families of shadow traffic, per (model, primary version, shadow version).

Shadow copies are a fraction of the traffic and already cost a whole extra execution, so these
count directly instead of through the buffered recorder.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from server.routing.diff import Comparison
from server.telemetry.metrics import LATENCY_BUCKETS

_LABELS = ("model", "version", "shadow_version")

#: |primary - shadow| of scores: from float noise (1e-7) to a different answer (1).
DIFF_BUCKETS = (1e-7, 1e-6, 1e-5, 1e-4, 1e-3, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


class ShadowMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._comparisons = Counter(
            "inference_shadow_comparisons",
            "Shadow copies compared with the primary's response, by result: agree or disagree "
            "(equal labels, equal argmax of class scores, scores within the tolerance).",
            (*_LABELS, "result"),
            registry=registry,
        )
        self._abs_diff = Histogram(
            "inference_shadow_abs_diff",
            "Largest |primary - shadow| over the floating-point outputs of one request.",
            _LABELS,
            buckets=DIFF_BUCKETS,
            registry=registry,
        )
        self._duration = Histogram(
            "inference_shadow_duration_seconds",
            "Time a shadow copy took on the shadow version, queue included.",
            _LABELS,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self._errors = Counter(
            "inference_shadow_errors",
            "Shadow copies that failed on the shadow version, by gRPC status code name (the client never sees them).",
            (*_LABELS, "code"),
            registry=registry,
        )
        self._dropped = Counter(
            "inference_shadow_dropped",
            "Shadow copies not run because the shadow version was saturated.",
            _LABELS,
            registry=registry,
        )

    def compared(self, model: str, version: str, shadow: str, comparison: Comparison) -> None:
        self._comparisons.labels(model, version, shadow, "agree" if comparison.agree else "disagree").inc()
        if comparison.max_abs_diff is not None:
            self._abs_diff.labels(model, version, shadow).observe(comparison.max_abs_diff)

    def latency(self, model: str, version: str, shadow: str, seconds: float) -> None:
        self._duration.labels(model, version, shadow).observe(seconds)

    def failed(self, model: str, version: str, shadow: str, code: str) -> None:
        self._errors.labels(model, version, shadow, code).inc()

    def dropped(self, model: str, version: str, shadow: str) -> None:
        self._dropped.labels(model, version, shadow).inc()
