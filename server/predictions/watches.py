"""Which outputs and inputs of a model version are watched, and how: inferred from the signature, overridable.

Inference rules, chosen to be right for common models:
- a float output of one value per sample ([N] or [N, 1]) is a *score*: a histogram, by default 20 equal-width
  buckets on [0, 1] (a sigmoid or probability), else the reference profile's or the config's buckets;
- a float output of k values per sample, 2 <= k <= MAX_PROBABILITY_CLASSES, is *class probabilities*: the
  argmax is counted as the predicted class, and with few classes each class's score gets a histogram too;
- an integer or string output of one value per sample is a *class label*, counted per class.
Anything else (embeddings, images, sequences) is not watched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from server.predictions.config import MAX_CLASSES, OTHER_CLASS, TelemetryConfig

if TYPE_CHECKING:
    from server.predictions.profile import ReferenceProfile

#: Default score buckets: 20 equal-width buckets on [0, 1] (upper bounds; Prometheus adds +Inf).
UNIT_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
#: A float output with more values per sample than this is not class probabilities (an embedding, say).
MAX_PROBABILITY_CLASSES = 1000
#: ONNX metadata_props keys that may list the class labels, comma-separated; first present wins.
CLASS_METADATA_KEYS = ("classes", "class_names", "labels")
#: Feature buckets without a reference profile: the scale is unknown, so just the sign (plus count and sum:
#: the mean). Prometheus histograms need at least one finite bucket.
UNPROFILED_FEATURE_EDGES = (0.0,)
#: ONNX metadata_props key naming the features (columns) of a 2-D input, comma-separated.
FEATURE_METADATA_KEY = "features"

_FLOATS = frozenset({"FP16", "FP32", "FP64", "BF16"})
_INTEGERS = frozenset({"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"})


@dataclass(frozen=True, slots=True)
class TensorShape:
    """What the watch planner needs of a model input or output (kept free of the server's own types)."""

    name: str
    datatype: str
    sample_shape: tuple[int, ...]
    """The shape of one sample: the tensor's shape without its leading (batch) dimension; -1 = variable."""


@dataclass(frozen=True, slots=True)
class ScoreWatch:
    output: str
    edges: tuple[float, ...]
    """Finite bucket upper bounds, increasing; the +Inf bucket is implied."""


@dataclass(frozen=True, slots=True)
class ClassProbabilityWatch:
    output: str
    class_names: tuple[str, ...]
    """Label of each column; columns past MAX_CLASSES are counted as "other"."""
    histogram_edges: tuple[float, ...] | None
    """Per-class score histograms on these buckets, or None (too many classes)."""


@dataclass(frozen=True, slots=True)
class ClassLabelWatch:
    output: str
    class_names: tuple[str, ...]
    """Label of class index 0, 1, ... for integer outputs; for strings, the labels counted (others: "other").
    Empty: integers are labelled by their value, strings by the first MAX_CLASSES values seen."""


@dataclass(frozen=True, slots=True)
class FeatureWatch:
    input: str
    feature_names: tuple[str, ...]
    """One per watched column (the first len(feature_names) columns)."""
    edges: tuple[tuple[float, ...], ...]
    """Bucket bounds per feature, from the reference profile, else UNPROFILED_FEATURE_EDGES."""


OutputWatch = ScoreWatch | ClassProbabilityWatch | ClassLabelWatch


@dataclass(frozen=True, slots=True)
class WatchPlan:
    outputs: tuple[OutputWatch, ...] = ()
    inputs: tuple[FeatureWatch, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.outputs and not self.inputs

    def histogram_edges(self) -> dict[tuple[str, str], tuple[float, ...]]:
        """(output, class) -> bucket bounds of every score histogram; class "" is a score output itself."""
        edges: dict[tuple[str, str], tuple[float, ...]] = {}
        for watch in self.outputs:
            if isinstance(watch, ScoreWatch):
                edges[(watch.output, "")] = watch.edges
            elif isinstance(watch, ClassProbabilityWatch) and watch.histogram_edges is not None:
                for name in watch.class_names:
                    edges[(watch.output, name)] = watch.histogram_edges
        return edges

    def feature_edges(self) -> dict[tuple[str, str], tuple[float, ...]]:
        """(input, feature) -> bucket bounds of every feature histogram."""
        return {
            (w.input, name): edges for w in self.inputs for name, edges in zip(w.feature_names, w.edges, strict=False)
        }


def names_from_metadata(metadata: Mapping[str, str], keys: Sequence[str]) -> tuple[str, ...]:
    for key in keys:
        text = metadata.get(key, "")
        if text.strip():
            return tuple(part.strip() for part in text.split(","))
    return ()


def _per_sample_values(shape: tuple[int, ...]) -> int | None:
    """Values per sample of a 0-D or 1-D sample shape: 1 for [] or [1], k for [k]; None otherwise."""
    if shape in ((), (1,)):
        return 1
    if len(shape) == 1 and shape[0] > 0:
        return shape[0]
    return None


def _plan_output(
    spec: TensorShape,
    config: TelemetryConfig,
    metadata: Mapping[str, str],
    profile: ReferenceProfile | None,
) -> OutputWatch | None:
    override = config.outputs.get(spec.name)
    kind = override.kind if override is not None else "auto"
    if kind == "off":
        return None
    values = _per_sample_values(spec.sample_shape)
    if kind == "auto":
        if spec.datatype in _FLOATS and values == 1:
            kind = "score"
        elif spec.datatype in _FLOATS and values is not None and 2 <= values <= MAX_PROBABILITY_CLASSES:
            kind = "class_probabilities"
        elif (spec.datatype in _INTEGERS or spec.datatype == "BYTES") and values == 1:
            kind = "class"
        else:
            return None
    class_names = (override.class_names if override is not None else ()) or names_from_metadata(
        metadata, CLASS_METADATA_KEYS
    )
    edges = _edges(spec.name, override.buckets if override is not None else (), profile)
    if kind == "score":
        return ScoreWatch(spec.name, edges)
    if kind == "class":
        return ClassLabelWatch(spec.name, class_names)
    columns = values if values is not None and values > 1 else len(class_names)
    names = tuple(class_names[i] if i < len(class_names) else str(i) for i in range(columns))
    histograms = edges if 0 < columns <= config.class_histograms_max else None
    return ClassProbabilityWatch(spec.name, names, histograms)


def _edges(name: str, configured: tuple[float, ...], profile: ReferenceProfile | None) -> tuple[float, ...]:
    """Config first, then the profile's (so live buckets line up with the reference), then [0, 1]."""
    if configured:
        return configured
    if profile is not None:
        edges = profile.score_edges(name)
        if edges:
            return edges
    return UNIT_BUCKETS


def _plan_input(
    spec: TensorShape, config: TelemetryConfig, metadata: Mapping[str, str], profile: ReferenceProfile | None
) -> FeatureWatch | None:
    if spec.datatype not in _FLOATS or len(spec.sample_shape) != 1 or spec.sample_shape[0] < 1:
        return None
    count = min(spec.sample_shape[0], config.max_features)
    known = names_from_metadata(metadata, (FEATURE_METADATA_KEY,))
    names = tuple(known[i] if i < len(known) else str(i) for i in range(count))
    edges = tuple(
        (profile.feature_edges(spec.name, feature) if profile is not None else ()) or UNPROFILED_FEATURE_EDGES
        for feature in names
    )
    return FeatureWatch(spec.name, names, edges)


def plan_watches(
    inputs: Sequence[TensorShape],
    outputs: Sequence[TensorShape],
    config: TelemetryConfig,
    metadata: Mapping[str, str],
    profile: ReferenceProfile | None = None,
) -> WatchPlan:
    """What to watch on one version; `metadata` is the ONNX file's metadata_props."""
    if not config.enabled:
        return WatchPlan()
    watched = tuple(w for spec in outputs if (w := _plan_output(spec, config, metadata, profile)) is not None)
    features: tuple[FeatureWatch, ...] = ()
    if config.watch_inputs:
        features = tuple(f for spec in inputs if (f := _plan_input(spec, config, metadata, profile)) is not None)
    return WatchPlan(watched, features)


def class_label(names: tuple[str, ...], index: int) -> str:
    """The label of class `index`: its name, else the index itself; past MAX_CLASSES, "other"."""
    if index < 0 or index >= MAX_CLASSES:
        return OTHER_CLASS
    return names[index] if index < len(names) else str(index)
