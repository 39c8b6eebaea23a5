"""Reference profiles: what a version predicted on its reference data, stored beside the model file.

`<model>/<version>/reference.json` holds, per watched output, the bucket edges and proportions of its
score histograms and the class priors, per watched input feature its histogram, the sample count and
where the data came from. Live predictions are bucketed on the same edges (see watches.plan_watches),
so drift compares like with like.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.predictions.config import TelemetryConfig
from server.predictions.tally import PredictionTally, Tallied
from server.predictions.watches import (
    UNPROFILED_FEATURE_EDGES,
    FeatureWatch,
    OutputWatch,
    ScoreWatch,
    TensorShape,
    WatchPlan,
    plan_watches,
)

PROFILE_FILE = "reference.json"
FORMAT = 1
#: Feature and unbounded-score histograms get quantile edges: this many buckets of equal reference mass.
QUANTILE_BUCKETS = 10


class ProfileError(ValueError):
    """A reference profile that cannot be read or used; the message names the file and what is wrong."""


@dataclass(frozen=True, slots=True)
class Distribution:
    """Proportions over histogram buckets: `proportions` has one more entry than `edges` (the +Inf bucket)."""

    edges: tuple[float, ...]
    proportions: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class ReferenceProfile:
    samples: int
    histograms: Mapping[tuple[str, str], Distribution] = field(default_factory=dict)
    """(output, class) -> score histogram; class "" is a score output itself."""
    classes: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    """output -> class label -> proportion of predictions."""
    features: Mapping[tuple[str, str], Distribution] = field(default_factory=dict)
    """(input, feature) -> histogram."""
    source: Mapping[str, str] = field(default_factory=dict)
    """Where the reference data came from: data_sha256, data_file, created, model_sha256, ..."""

    def score_edges(self, output: str) -> tuple[float, ...]:
        """The edges of `output`'s score histogram (or its first per-class histogram), () when none."""
        for (name, _), distribution in sorted(self.histograms.items()):
            if name == output:
                return distribution.edges
        return ()

    def feature_edges(self, input_name: str, feature: str) -> tuple[float, ...]:
        distribution = self.features.get((input_name, feature))
        return () if distribution is None else distribution.edges

    # -------------------------------------------------------------- JSON

    def to_json(self) -> dict[str, Any]:
        outputs: dict[str, dict[str, Any]] = {}
        for (output, class_name), distribution in sorted(self.histograms.items()):
            entry = outputs.setdefault(output, {})
            if class_name:
                entry.setdefault("class_histograms", {})[class_name] = _distribution_json(distribution)
            else:
                entry["histogram"] = _distribution_json(distribution)
        for output, priors in sorted(self.classes.items()):
            outputs.setdefault(output, {})["classes"] = {k: _round(v) for k, v in sorted(priors.items())}
        inputs: dict[str, dict[str, Any]] = {}
        for (input_name, feature), distribution in self.features.items():
            inputs.setdefault(input_name, {})[feature] = _distribution_json(distribution)
        return {
            "format": FORMAT,
            "samples": self.samples,
            "source": dict(self.source),
            "outputs": outputs,
            "inputs": inputs,
        }

    @staticmethod
    def from_json(data: Any, where: str = "profile") -> ReferenceProfile:
        try:
            return _parse(data)
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ProfileError(f"{where} is not a valid reference profile (format {FORMAT}): {error}") from None


def _round(value: float) -> float:
    return float(f"{value:.6g}")


def _distribution_json(distribution: Distribution) -> dict[str, Any]:
    return {
        "edges": [_round(edge) for edge in distribution.edges],
        "proportions": [_round(p) for p in distribution.proportions],
    }


def _distribution(data: Any, what: str) -> Distribution:
    edges = tuple(float(e) for e in data["edges"])
    proportions = tuple(float(p) for p in data["proportions"])
    if len(proportions) != len(edges) + 1:
        raise ValueError(f"{what}: needs one more proportion than edges (the +Inf bucket)")
    if any(b <= a for a, b in itertools.pairwise(edges)) or not all(map(math.isfinite, edges)):
        raise ValueError(f"{what}: edges must be finite and strictly increasing")
    if any(p < 0 or not math.isfinite(p) for p in proportions):
        raise ValueError(f"{what}: proportions must be finite and non-negative")
    return Distribution(edges, proportions)


def _parse(data: Any) -> ReferenceProfile:
    if not isinstance(data, dict):
        raise ValueError("the top level must be an object")
    if data.get("format") != FORMAT:
        raise ValueError(f"format is {data.get('format')!r}, this server reads {FORMAT}")
    samples = int(data["samples"])
    histograms: dict[tuple[str, str], Distribution] = {}
    classes: dict[str, dict[str, float]] = {}
    for output, entry in dict(data.get("outputs", {})).items():
        if "histogram" in entry:
            histograms[(output, "")] = _distribution(entry["histogram"], f"outputs.{output}.histogram")
        for class_name, item in dict(entry.get("class_histograms", {})).items():
            where = f"outputs.{output}.class_histograms.{class_name}"
            histograms[(output, str(class_name))] = _distribution(item, where)
        if "classes" in entry:
            priors = {str(k): float(v) for k, v in dict(entry["classes"]).items()}
            if any(p < 0 or not math.isfinite(p) for p in priors.values()):
                raise ValueError(f"outputs.{output}.classes: proportions must be finite and non-negative")
            classes[output] = priors
    features: dict[tuple[str, str], Distribution] = {}
    for input_name, per_feature in dict(data.get("inputs", {})).items():
        for feature, item in dict(per_feature).items():
            features[(input_name, str(feature))] = _distribution(item, f"inputs.{input_name}.{feature}")
    source = {str(k): str(v) for k, v in dict(data.get("source", {})).items()}
    return ReferenceProfile(samples, histograms, classes, features, source)


def load_profile(path: Path) -> ReferenceProfile:
    """Read and validate a profile file; ProfileError names the file and the problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ProfileError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise ProfileError(f"{path} is not valid JSON: {error}") from None
    return ReferenceProfile.from_json(data, str(path))


def write_profile(path: Path, profile: ReferenceProfile) -> None:
    """Sorted keys and rounded numbers: the same data gives a byte-identical file."""
    path.write_bytes((_pretty(profile.to_json(), 0) + "\n").encode("utf-8"))


def _pretty(value: Any, depth: int) -> str:
    """Indented JSON with each list of numbers on one line: a 20-bucket histogram reads as two lines, not 22."""
    if isinstance(value, dict) and value:
        pad = " " * (depth + 1)
        items = [f"{pad}{json.dumps(key)}: {_pretty(value[key], depth + 1)}" for key in sorted(value)]
        return "{\n" + ",\n".join(items) + "\n" + " " * depth + "}"
    return json.dumps(value)


# ------------------------------------------------------------------ building


def quantile_edges(values: npt.NDArray[Any], buckets: int = QUANTILE_BUCKETS) -> tuple[float, ...]:
    """Edges that split `values` into `buckets` groups of about equal size (fewer when values repeat)."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return ()
    cuts = np.quantile(flat, np.linspace(0.0, 1.0, buckets + 1)[1:-1])
    edges = tuple(float(f"{edge:.6g}") for edge in np.unique(cuts))
    return tuple(sorted(set(edges)))


def _choose_edges(plan: WatchPlan, outputs: Mapping[str, npt.NDArray[Any]], config: TelemetryConfig) -> WatchPlan:
    """Scores outside [0, 1] without configured buckets, and every input feature, get quantile edges."""
    watches: list[OutputWatch] = []
    for watch in plan.outputs:
        configured = watch.output in config.outputs and config.outputs[watch.output].buckets
        if isinstance(watch, ScoreWatch) and not configured and watch.output in outputs:
            values = np.asarray(outputs[watch.output], dtype=np.float64)
            finite = values[np.isfinite(values)]
            if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
                watches.append(ScoreWatch(watch.output, quantile_edges(finite)))
                continue
        watches.append(watch)
    return WatchPlan(tuple(watches), plan.inputs)


def _feature_edges(plan: WatchPlan, inputs: Mapping[str, npt.NDArray[Any]]) -> WatchPlan:
    features = []
    for watch in plan.inputs:
        matrix = np.asarray(inputs[watch.input]) if watch.input in inputs else None
        if matrix is None or matrix.ndim != 2:
            features.append(watch)
            continue
        columns = range(min(len(watch.feature_names), matrix.shape[1]))
        # A column with no finite value has no quantiles: it keeps the buckets live traffic uses without a profile.
        edges = tuple(quantile_edges(matrix[:, i]) or UNPROFILED_FEATURE_EDGES for i in columns)
        features.append(FeatureWatch(watch.input, watch.feature_names[: len(edges)], edges))
    return WatchPlan(plan.outputs, tuple(features))


def data_sha256(arrays: Mapping[str, npt.NDArray[Any]]) -> str:
    """A digest of the reference inputs (names, dtypes, shapes and bytes), independent of the file format."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes() if array.dtype != np.object_ else repr(array.tolist()).encode())
    return digest.hexdigest()


def build_profile(
    input_specs: tuple[TensorShape, ...],
    output_specs: tuple[TensorShape, ...],
    config: TelemetryConfig,
    metadata: Mapping[str, str],
    inputs: Mapping[str, npt.NDArray[Any]],
    outputs: Mapping[str, npt.NDArray[Any]],
    source: Mapping[str, str],
) -> ReferenceProfile:
    """The profile of a version that answered `outputs` for `inputs`, counted exactly as live traffic is."""
    plan = plan_watches(input_specs, output_specs, config, metadata)
    plan = _feature_edges(_choose_edges(plan, outputs, config), inputs)
    tally = PredictionTally(plan)
    tally.observe(outputs, inputs)
    counted = tally.drain()
    samples = _samples(outputs, plan)
    stamped = {"created": datetime.now(UTC).isoformat(timespec="seconds"), **source}
    return _from_counts(counted, plan, samples, stamped)


def _samples(outputs: Mapping[str, npt.NDArray[Any]], plan: WatchPlan) -> int:
    for watch in plan.outputs:
        if watch.output in outputs:
            array = outputs[watch.output]
            return int(array.shape[0]) if array.ndim else 1
    return 0


def _from_counts(counted: Tallied, plan: WatchPlan, samples: int, source: Mapping[str, str]) -> ReferenceProfile:
    edges_of = plan.histogram_edges()
    histograms = {
        key: _normalised(edges_of[key], counts.counts) for key, counts in counted.histograms.items() if key in edges_of
    }
    totals: dict[str, int] = {}
    for (output, _), count in counted.classes.items():
        totals[output] = totals.get(output, 0) + count
    classes: dict[str, dict[str, float]] = {}
    for (output, label), count in counted.classes.items():
        classes.setdefault(output, {})[label] = count / totals[output]
    feature_edges = plan.feature_edges()
    features = {key: _normalised(feature_edges.get(key, ()), counts.counts) for key, counts in counted.features.items()}
    return ReferenceProfile(samples, histograms, classes, features, dict(source))


def _normalised(edges: tuple[float, ...], counts: npt.NDArray[np.int64]) -> Distribution:
    total = int(counts.sum())
    proportions = tuple(float(c) / total for c in counts.tolist()) if total else (0.0,) * len(counts)
    return Distribution(edges, proportions)
