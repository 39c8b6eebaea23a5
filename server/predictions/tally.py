"""Counting predictions per executed batch, vectorised: a batch costs a list append per watch.

The batcher hands each executed batch's merged outputs to `PredictionTally.observe`, which only keeps a
reference to each watched array. `drain()` (at metrics flush, every 0.1 s and before every scrape)
concatenates what accumulated and buckets it with numpy in one pass per watch, so a busy model pays for
numpy once per flush rather than once per request or batch. The arrays are the responses' own
buffers (never modified); holding them until the next flush is bounded by MAX_BUFFERED_ARRAYS.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from server.predictions.config import MAX_CLASSES, OTHER_CLASS
from server.predictions.watches import (
    ClassLabelWatch,
    ClassProbabilityWatch,
    FeatureWatch,
    OutputWatch,
    ScoreWatch,
    WatchPlan,
    class_label,
)

#: Buffered arrays per watch before they are counted right away, so memory stays bounded without flushes.
MAX_BUFFERED_ARRAYS = 1024

Array = npt.NDArray[Any]


@dataclass(slots=True)
class HistogramCounts:
    """Observations per bucket (non-cumulative; the last is +Inf), their sum, and values left out (NaN, ±Inf)."""

    counts: npt.NDArray[np.int64]
    total: float = 0.0
    nonfinite: int = 0

    def add(self, other: HistogramCounts) -> None:
        self.counts += other.counts
        self.total += other.total
        self.nonfinite += other.nonfinite


def bucket_counts(values: Array, edges: tuple[float, ...]) -> HistogramCounts:
    """Prometheus bucketing ("less than or equal"): value v goes to the first bucket whose bound is >= v.

    Compared in the values' own float precision: a model's float32 0.05 is 0.0500000007 as a double and
    would otherwise land above the 0.05 bound it was meant to sit on."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype.kind != "f":
        flat = flat.astype(np.float64)
    finite = np.isfinite(flat)
    kept = flat if finite.all() else flat[finite]
    index = np.searchsorted(np.asarray(edges, dtype=flat.dtype), kept, side="left")
    counts = np.bincount(index, minlength=len(edges) + 1).astype(np.int64)
    return HistogramCounts(counts, float(kept.sum(dtype=np.float64)), int(flat.size - kept.size))


@dataclass(slots=True)
class Tallied:
    """What drained from a tally: keys are (output, class) for histograms ("" = the score itself),
    (output, class label) for predicted classes, (input, feature) for features."""

    histograms: dict[tuple[str, str], HistogramCounts] = field(default_factory=dict)
    classes: dict[tuple[str, str], int] = field(default_factory=dict)
    features: dict[tuple[str, str], HistogramCounts] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not self.histograms and not self.classes and not self.features


def _merge_histogram(into: dict[tuple[str, str], HistogramCounts], key: tuple[str, str], add: HistogramCounts) -> None:
    existing = into.get(key)
    if existing is None:
        into[key] = add
    else:
        existing.add(add)


class PredictionTally:
    """Buffers one version's watched outputs (and inputs) per batch and counts them on `drain()`."""

    def __init__(self, plan: WatchPlan) -> None:
        self.plan = plan
        self._outputs: list[tuple[OutputWatch, list[Array]]] = [(watch, []) for watch in plan.outputs]
        self._inputs: list[tuple[FeatureWatch, list[Array]]] = [(watch, []) for watch in plan.inputs]
        self._string_labels: dict[str, dict[str, str]] = {}
        self._counted = Tallied()

    def observe(self, outputs: Mapping[str, Array], inputs: Mapping[str, Array] | None = None) -> None:
        """One executed batch (hot path: an append per watch)."""
        for watch, buffer in self._outputs:
            array = outputs.get(watch.output)
            if array is not None:
                buffer.append(array)
                if len(buffer) >= MAX_BUFFERED_ARRAYS:
                    self._count_output(watch, buffer)
        if inputs is not None:
            for feature_watch, feature_buffer in self._inputs:
                array = inputs.get(feature_watch.input)
                if array is not None:
                    feature_buffer.append(array)
                    if len(feature_buffer) >= MAX_BUFFERED_ARRAYS:
                        self._count_features(feature_watch, feature_buffer)

    def drain(self) -> Tallied:
        """Everything observed since the last drain, counted."""
        for watch, buffer in self._outputs:
            if buffer:
                self._count_output(watch, buffer)
        for feature_watch, feature_buffer in self._inputs:
            if feature_buffer:
                self._count_features(feature_watch, feature_buffer)
        counted, self._counted = self._counted, Tallied()
        return counted

    # ------------------------------------------------------------------ counting (at flush)

    def _count_output(self, watch: OutputWatch, buffer: list[Array]) -> None:
        arrays = list(buffer)
        buffer.clear()
        if isinstance(watch, ScoreWatch):
            values = np.concatenate([a.reshape(-1) for a in arrays])
            _merge_histogram(self._counted.histograms, (watch.output, ""), bucket_counts(values, watch.edges))
        elif isinstance(watch, ClassProbabilityWatch):
            self._count_probabilities(watch, arrays)
        else:
            self._count_labels(watch, arrays)

    def _count_probabilities(self, watch: ClassProbabilityWatch, arrays: list[Array]) -> None:
        columns = len(watch.class_names)
        matrix = np.concatenate([a.reshape(a.shape[0] if a.ndim else 1, -1) for a in arrays])
        if matrix.shape[1] != columns or matrix.shape[0] == 0:
            return  # a variable-width output that does not match the signature: nothing sensible to count
        nan = np.isnan(matrix)
        # A row without any number predicts no class (its NaNs are counted by the per-class histograms, if any).
        decided = matrix[~nan.all(axis=1)] if nan.any() else matrix
        predicted = np.bincount(np.argmax(np.where(np.isnan(decided), -np.inf, decided), axis=1), minlength=columns)
        for index, count in enumerate(predicted.tolist()):
            if count:
                self._add_class(watch.output, class_label(watch.class_names, index), count)
        if watch.histogram_edges is not None:
            for index, name in enumerate(watch.class_names):
                counts = bucket_counts(matrix[:, index], watch.histogram_edges)
                _merge_histogram(self._counted.histograms, (watch.output, name), counts)

    def _count_labels(self, watch: ClassLabelWatch, arrays: list[Array]) -> None:
        values = np.concatenate([a.reshape(-1) for a in arrays])
        if values.size == 0:
            return
        if values.dtype.kind in "iub":
            unique, counts = np.unique(values, return_counts=True)
            for value, count in zip(unique.tolist(), counts.tolist(), strict=True):
                self._add_class(watch.output, class_label(watch.class_names, int(value)), int(count))
            return
        texts = np.array([v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in values])
        unique, first, counts = np.unique(texts, return_index=True, return_counts=True)
        # In order of first appearance, so that the first MAX_CLASSES values seen become the labels.
        for index in np.argsort(first, kind="stable").tolist():
            self._add_class(watch.output, self._string_label(watch, str(unique[index])), int(counts[index]))

    def _string_label(self, watch: ClassLabelWatch, text: str) -> str:
        if watch.class_names:
            return text if text in watch.class_names[:MAX_CLASSES] else OTHER_CLASS
        seen = self._string_labels.setdefault(watch.output, {})
        label = seen.get(text)
        if label is None:  # the first MAX_CLASSES distinct values become labels; the rest share "other"
            label = text if len(seen) < MAX_CLASSES else OTHER_CLASS
            if len(seen) < MAX_CLASSES:
                seen[text] = label
        return label

    def _add_class(self, output: str, label: str, count: int) -> None:
        key = (output, label)
        self._counted.classes[key] = self._counted.classes.get(key, 0) + count

    def _count_features(self, watch: FeatureWatch, buffer: list[Array]) -> None:
        arrays = list(buffer)
        buffer.clear()
        matrix = np.concatenate([a.reshape(a.shape[0] if a.ndim else 1, -1) for a in arrays])
        for index, name in enumerate(watch.feature_names):
            if index >= matrix.shape[1]:
                break
            edges = watch.edges[index] if index < len(watch.edges) else ()
            _merge_histogram(self._counted.features, (watch.input, name), bucket_counts(matrix[:, index], edges))
