"""Prometheus side of prediction telemetry: the metric families, each version's recorder, the drift gauge.

Score histograms need different buckets per output (a probability on [0, 1], a regression score on its
reference profile's quantiles), but a prometheus_client Histogram family has one bucket layout for all
its children. `_child_with_buckets` therefore builds a child with its own buckets and registers it in
the family; the exposition (single process or merged from --workers files) writes each child's own `le`
series, which is all Prometheus needs. The library layout it relies on is checked where it is used.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from server.predictions.monitor import DriftScore, LiveCounts, Series
from server.predictions.tally import HistogramCounts, PredictionTally, Tallied
from server.predictions.watches import UNIT_BUCKETS, UNPROFILED_FEATURE_EDGES, WatchPlan

PREDICTION = "inference_prediction"
PREDICTED_CLASS = "inference_predicted_class"
INPUT_FEATURE = "inference_input_feature"


class PredictionFamilies:
    """The prediction metric families of one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.prediction = Histogram(
            PREDICTION,
            'Predicted scores per watched output: a score output (class="") or one class\'s probability. Buckets '
            "are the version's reference profile's, else 20 on [0, 1].",
            ("model", "version", "output", "class"),
            buckets=UNIT_BUCKETS,
            registry=registry,
        )
        self.predicted_class = Counter(
            PREDICTED_CLASS,
            "Predictions per class: the argmax of a class-probability output or the value of a label output "
            '(at most 50 classes per output, the rest counted as "other").',
            ("model", "version", "output", "class"),
            registry=registry,
        )
        self.nonfinite = Counter(
            "inference_prediction_nonfinite",
            "Predicted scores that were NaN or infinite (left out of inference_prediction).",
            ("model", "version", "output"),
            registry=registry,
        )
        self.input_feature = Histogram(
            INPUT_FEATURE,
            "Input feature values (config [telemetry] watch_inputs): buckets from the reference profile, else "
            "only the sign (with count and sum: the mean).",
            ("model", "version", "input", "feature"),
            buckets=UNPROFILED_FEATURE_EDGES,
            registry=registry,
        )

    def recorder(self, model: str, version: int, plan: WatchPlan) -> PredictionRecorder:
        return PredictionRecorder(self, model, str(version), plan)


def _child_with_buckets(family: Histogram, labels: tuple[str, ...], edges: tuple[float, ...]) -> Any:
    """The family's child for `labels`, with `edges` as its buckets (replacing one with other buckets)."""
    wanted = [*edges, math.inf]
    metrics = getattr(family, "_metrics", None)
    lock = getattr(family, "_lock", None)
    if not isinstance(metrics, dict) or lock is None:
        raise TypeError(f"unsupported prometheus_client layout: {type(family).__name__}")
    with lock:
        child = metrics.get(labels)
        if child is not None and list(getattr(child, "_upper_bounds", ())) == wanted:
            return child
        child = Histogram(
            getattr(family, "_original_name", family._name),
            documentation=family._documentation,
            labelnames=family._labelnames,
            buckets=edges,
            _labelvalues=labels,
        )
        metrics[labels] = child
        return child


class PredictionRecorder:
    """One version's prediction counts: buffered per batch by its tally, added to Prometheus on flush."""

    def __init__(self, families: PredictionFamilies, model: str, version: str, plan: WatchPlan) -> None:
        self.tally = PredictionTally(plan)
        self.watch_inputs = bool(plan.inputs)
        self._families = families
        self._labels = (model, version)
        self._children: dict[tuple[str, str, str], Any] = {}
        self._edges = plan.histogram_edges()
        self._feature_edges = plan.feature_edges()

    def flush(self) -> None:
        counted = self.tally.drain()
        if not counted.empty:
            self._publish(counted)

    def _publish(self, counted: Tallied) -> None:
        for (output, class_name), counts in counted.histograms.items():
            child = self._child("h", output, class_name)
            _add(child, counts)
            if counts.nonfinite:
                self._families.nonfinite.labels(*self._labels, output).inc(counts.nonfinite)
        for (output, label), count in counted.classes.items():
            self._child("c", output, label).inc(count)
        for (input_name, feature), counts in counted.features.items():
            _add(self._child("f", input_name, feature), counts)

    def _child(self, kind: str, name: str, part: str) -> Any:
        key = (kind, name, part)
        child = self._children.get(key)
        if child is None:
            labels = (*self._labels, name, part)
            if kind == "h":
                child = _child_with_buckets(
                    self._families.prediction, labels, self._edges.get((name, part), UNIT_BUCKETS)
                )
            elif kind == "f":
                edges = self._feature_edges.get((name, part), UNPROFILED_FEATURE_EDGES)
                child = _child_with_buckets(self._families.input_feature, labels, edges)
            else:
                child = self._families.predicted_class.labels(*labels)
            self._children[key] = child
        return child


def _add(child: Any, counts: HistogramCounts) -> None:
    """Add bucketed counts to a histogram child at once (prometheus_client can only observe one value)."""
    buckets = child._buckets
    if len(buckets) != len(counts.counts):
        raise TypeError(f"histogram child has {len(buckets)} buckets, counts have {len(counts.counts)}")
    for index, count in enumerate(counts.counts.tolist()):
        if count:
            buckets[index].inc(count)
    child._sum.inc(counts.total)


# ------------------------------------------------------------------ reading back (for the drift monitor)


def read_live_counts(families: Iterable[Metric]) -> LiveCounts:
    """Cumulative prediction counts per version and series from collected metric families (a scrape's view).

    Histogram buckets come back as per-bucket (non-cumulative) counts keyed by their `le` text.
    """
    live: dict[tuple[str, int, Series], dict[str, float]] = {}
    for family in families:
        if family.name == PREDICTION:
            _read_buckets(family, "histogram", "output", "class", live)
        elif family.name == INPUT_FEATURE:
            _read_buckets(family, "feature", "input", "feature", live)
        elif family.name == PREDICTED_CLASS:
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                key = _version_key(sample.labels, Series("classes", sample.labels.get("output", "")))
                if key is not None:
                    counts = live.setdefault(key, {})
                    counts[sample.labels.get("class", "")] = sample.value
    return live


def _version_key(labels: dict[str, str], series: Series) -> tuple[str, int, Series] | None:
    try:
        return labels["model"], int(labels["version"]), series
    except (KeyError, ValueError):
        return None


def _read_buckets(
    family: Metric, kind: str, name_label: str, part_label: str, live: dict[tuple[str, int, Series], dict[str, float]]
) -> None:
    cumulative: dict[tuple[str, int, Series], list[tuple[float, str, float]]] = {}
    for sample in family.samples:
        if not sample.name.endswith("_bucket"):
            continue
        series = Series(kind, sample.labels.get(name_label, ""), sample.labels.get(part_label, ""))
        key = _version_key(sample.labels, series)
        le = sample.labels.get("le", "")
        if key is None or not le:
            continue
        bound = math.inf if le == "+Inf" else float(le)
        cumulative.setdefault(key, []).append((bound, le, sample.value))
    for key, buckets in cumulative.items():
        buckets.sort()
        previous = 0.0
        counts = live.setdefault(key, {})
        for _, le, value in buckets:
            counts[le] = value - previous
            previous = value


class DriftGauge:
    """`inference_drift_score`: a collector over the drift monitor's latest scores (none when too few samples).

    Registered only where the monitor runs (the single server, or the --workers supervisor), never in a
    worker's multiprocess files: there is one value per version per server."""

    def __init__(self, scores: Callable[[], list[DriftScore]]) -> None:
        self._scores = scores

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> list[Metric]:
        family, samples = self._families()
        scores = sorted(self._scores(), key=lambda s: (s.model, s.version, s.series, s.method))
        for score in scores:
            family.add_metric([score.model, str(score.version), score.series.label, score.method], score.value)
        seen = set()
        for score in scores:
            key = (score.model, str(score.version), score.series.label)
            if key not in seen:
                seen.add(key)
                samples.add_metric(list(key), score.samples)
        return [family, samples]

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        score = GaugeMetricFamily(
            "inference_drift_score",
            "Distance of the version's recent predictions (sliding window) from its reference profile: "
            "method psi (< 0.1 stable, > 0.25 significant shift) or js (Jensen-Shannon distance, 0..1).",
            labels=("model", "version", "output", "method"),
        )
        samples = GaugeMetricFamily(
            "inference_drift_window_samples",
            "Predictions in the window each drift score was computed on.",
            labels=("model", "version", "output"),
        )
        return score, samples
