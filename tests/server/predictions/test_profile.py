"""server.predictions.profile: the reference.json format, its errors, and profiles built from known outputs."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from server.predictions.config import OutputWatchConfig, TelemetryConfig
from server.predictions.profile import (
    FORMAT,
    QUANTILE_BUCKETS,
    Distribution,
    ProfileError,
    ReferenceProfile,
    build_profile,
    data_sha256,
    load_profile,
    quantile_edges,
    write_profile,
)
from server.predictions.watches import UNIT_BUCKETS, TensorShape


def _le_counts(values: Any, edges: tuple[float, ...]) -> list[int]:
    """Per-bucket counts with the Prometheus "le" rule, one value at a time (independent of the tally),
    compared in the values' own float precision (a float32 0.05 sits on the 0.05 bound)."""
    array = np.asarray(values).reshape(-1)
    if array.dtype.kind != "f":
        array = array.astype(np.float64)
    bounds = [array.dtype.type(edge) for edge in edges]
    counts = [0] * (len(edges) + 1)
    for value in array:
        if np.isfinite(value):
            counts[next((i for i, bound in enumerate(bounds) if value <= bound), len(edges))] += 1
    return counts


def _proportions(values: Any, edges: tuple[float, ...]) -> list[float]:
    counts = _le_counts(values, edges)
    return [c / sum(counts) for c in counts]


def _independent_quantile_edges(values: Any) -> tuple[float, ...]:
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    cuts = np.quantile(flat[np.isfinite(flat)], [i / QUANTILE_BUCKETS for i in range(1, QUANTILE_BUCKETS)])
    return tuple(sorted({float(f"{c:.6g}") for c in cuts.tolist()}))


def _sample_profile() -> ReferenceProfile:
    return ReferenceProfile(
        samples=400,
        histograms={
            ("scores", ""): Distribution((0.25, 0.5, 0.75), (0.125, 0.25, 0.5, 0.125)),
            ("probs", "fraud"): Distribution((0.5,), (0.75, 0.25)),
            ("probs", "legit"): Distribution((0.5,), (0.25, 0.75)),
        },
        classes={"probs": {"legit": 0.75, "fraud": 0.25}, "label": {"0": 0.5, "1": 0.5}},
        features={("x", "amount"): Distribution((10.0, 100.0), (0.5, 0.25, 0.25))},
        source={"data_sha256": "abc", "created": "2026-01-01T00:00:00+00:00"},
    )


# ------------------------------------------------------------------ JSON


def test_to_json_layout() -> None:
    data = _sample_profile().to_json()
    assert data["format"] == FORMAT
    assert data["samples"] == 400
    assert data["outputs"]["scores"] == {
        "histogram": {"edges": [0.25, 0.5, 0.75], "proportions": [0.125, 0.25, 0.5, 0.125]}
    }
    assert data["outputs"]["probs"]["class_histograms"]["fraud"] == {"edges": [0.5], "proportions": [0.75, 0.25]}
    assert data["outputs"]["probs"]["classes"] == {"fraud": 0.25, "legit": 0.75}
    assert data["outputs"]["label"] == {"classes": {"0": 0.5, "1": 0.5}}
    assert data["inputs"] == {"x": {"amount": {"edges": [10.0, 100.0], "proportions": [0.5, 0.25, 0.25]}}}
    assert data["source"] == {"data_sha256": "abc", "created": "2026-01-01T00:00:00+00:00"}


def test_json_round_trip() -> None:
    profile = _sample_profile()
    assert ReferenceProfile.from_json(profile.to_json()) == profile
    assert ReferenceProfile.from_json(json.loads(json.dumps(profile.to_json()))) == profile


def test_to_json_rounds_to_six_significant_digits() -> None:
    profile = ReferenceProfile(3, histograms={("s", ""): Distribution((1 / 3,), (2 / 3, 1 / 3))})
    assert profile.to_json()["outputs"]["s"]["histogram"] == {"edges": [0.333333], "proportions": [0.666667, 0.333333]}


def test_score_and_feature_edges_lookup() -> None:
    profile = _sample_profile()
    assert profile.score_edges("scores") == (0.25, 0.5, 0.75)
    assert profile.score_edges("probs") == (0.5,)
    assert profile.score_edges("label") == ()
    assert profile.feature_edges("x", "amount") == (10.0, 100.0)
    assert profile.feature_edges("x", "age") == ()


def _write_json(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _valid() -> dict[str, Any]:
    return _sample_profile().to_json()


def _with(change: Any) -> dict[str, Any]:
    data = _valid()
    change(data)
    return data


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (["not", "an", "object"], "the top level must be an object"),
        (_with(lambda d: d.update(format=2)), "format is 2, this server reads 1"),
        (_with(lambda d: d.pop("format")), "format is None, this server reads 1"),
        (_with(lambda d: d.pop("samples")), "'samples'"),
        (
            _with(lambda d: d["outputs"]["scores"]["histogram"].update(edges=[0.5, 0.25, 0.75])),
            "outputs.scores.histogram: edges must be finite and strictly increasing",
        ),
        (
            _with(lambda d: d["outputs"]["scores"]["histogram"].update(edges=[0.25, 0.25, 0.75])),
            "outputs.scores.histogram: edges must be finite and strictly increasing",
        ),
        (
            _with(lambda d: d["outputs"]["probs"]["class_histograms"]["fraud"].update(proportions=[1.0])),
            "outputs.probs.class_histograms.fraud: needs one more proportion than edges",
        ),
        (
            _with(lambda d: d["outputs"]["scores"]["histogram"].update(proportions=[0.5, 0.5, 0.5, -0.5])),
            "outputs.scores.histogram: proportions must be finite and non-negative",
        ),
        (
            _with(lambda d: d["inputs"]["x"]["amount"].update(proportions=[0.5, 0.5])),
            "inputs.x.amount: needs one more proportion than edges",
        ),
        (
            _with(lambda d: d["inputs"]["x"]["amount"].update(edges=[10.0, math.inf])),
            "inputs.x.amount: edges must be finite and strictly increasing",
        ),
    ],
)
def test_load_profile_errors_name_the_file_and_the_field(tmp_path: Path, data: Any, message: str) -> None:
    path = _write_json(tmp_path, data)
    with pytest.raises(ProfileError) as raised:
        load_profile(path)
    text = str(raised.value)
    assert text.startswith(f"{path} is not a valid reference profile (format 1): ")
    assert message in text


def test_load_profile_of_bad_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    path.write_text('{"format": 1,', encoding="utf-8")
    with pytest.raises(ProfileError, match=r"reference\.json is not valid JSON") as raised:
        load_profile(path)
    assert str(path) in str(raised.value)


def test_load_profile_of_a_missing_file_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ProfileError, match="cannot read") as raised:
        load_profile(path)
    assert str(path) in str(raised.value)


def test_profile_error_is_a_value_error() -> None:
    assert issubclass(ProfileError, ValueError)


def test_from_json_names_where_it_came_from() -> None:
    with pytest.raises(ProfileError, match=r"^models/m/1/reference\.json is not a valid reference profile"):
        ReferenceProfile.from_json({"format": 7}, "models/m/1/reference.json")


def test_write_then_load_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "reference.json"
    write_profile(path, _sample_profile())
    assert load_profile(path) == _sample_profile()


def test_write_profile_is_byte_identical_for_the_same_profile(tmp_path: Path) -> None:
    profile = _sample_profile()
    reordered = ReferenceProfile(
        samples=profile.samples,
        histograms=dict(reversed(list(profile.histograms.items()))),
        classes={k: dict(reversed(list(v.items()))) for k, v in reversed(list(profile.classes.items()))},
        features=dict(profile.features),
        source=dict(reversed(list(profile.source.items()))),
    )
    first, second, third = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    write_profile(first, profile)
    write_profile(second, profile)
    write_profile(third, reordered)
    assert first.read_bytes() == second.read_bytes() == third.read_bytes()
    text = first.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert '"edges": [0.25, 0.5, 0.75],' in text  # a list of numbers on one line
    assert '"proportions": [0.125, 0.25, 0.5, 0.125]' in text


def test_write_profile_keeps_source_strings_with_brackets(tmp_path: Path) -> None:
    profile = ReferenceProfile(1, source={"data_file": "run [ 2 ].npz"})
    path = tmp_path / "reference.json"
    write_profile(path, profile)
    assert load_profile(path).source == {"data_file": "run [ 2 ].npz"}


# ------------------------------------------------------------------ quantile edges and digests


def test_quantile_edges_split_into_equal_groups() -> None:
    edges = quantile_edges(np.arange(1.0, 101.0))
    assert len(edges) == QUANTILE_BUCKETS - 1
    assert edges == _independent_quantile_edges(np.arange(1.0, 101.0))
    assert _le_counts(np.arange(1.0, 101.0), edges) == [10] * QUANTILE_BUCKETS


def test_quantile_edges_are_fewer_when_values_repeat_and_empty_without_finite_values() -> None:
    assert quantile_edges(np.array([3.0] * 50)) == (3.0,)
    assert quantile_edges(np.array([0.0] * 50 + [1.0] * 50)) == (0.0, 0.5, 1.0)
    assert quantile_edges(np.array([math.nan, math.inf])) == ()
    assert quantile_edges(np.array([], dtype=np.float32)) == ()


def test_data_sha256_depends_on_names_dtypes_shapes_and_bytes_only() -> None:
    a = np.arange(6, dtype=np.float32).reshape(2, 3)
    b = np.array([1, 2], dtype=np.int64)
    digest = data_sha256({"a": a, "b": b})
    assert digest == data_sha256({"b": b.copy(), "a": a.copy()})
    assert len(digest) == 64
    assert digest != data_sha256({"a": a.reshape(3, 2), "b": b})
    assert digest != data_sha256({"a": a.astype(np.float64), "b": b})
    assert digest != data_sha256({"a": a, "c": b})
    assert digest != data_sha256({"a": a + 1, "b": b})
    assert data_sha256({"s": np.array(["x", "y"], dtype=object)}) == data_sha256(
        {"s": np.array(["x", "y"], dtype=object)}
    )


# ------------------------------------------------------------------ build_profile


def _build(
    input_specs: tuple[TensorShape, ...],
    output_specs: tuple[TensorShape, ...],
    inputs: dict[str, npt.NDArray[Any]],
    outputs: dict[str, npt.NDArray[Any]],
    config: TelemetryConfig | None = None,
    metadata: dict[str, str] | None = None,
) -> ReferenceProfile:
    return build_profile(
        input_specs,
        output_specs,
        config or TelemetryConfig(),
        metadata or {},
        inputs,
        outputs,
        {"data_file": "ref.npz"},
    )


def test_build_profile_of_unit_scores_counts_like_le_buckets() -> None:
    rng = np.random.default_rng(7)
    scores = np.concatenate([rng.random(997), [0.05, 0.5, 1.0]]).astype(np.float32).reshape(-1, 1)
    profile = _build((), (TensorShape("s", "FP32", (1,)),), {}, {"s": scores})
    distribution = profile.histograms[("s", "")]
    assert profile.samples == 1000
    assert distribution.edges == UNIT_BUCKETS
    assert list(distribution.proportions) == pytest.approx(_proportions(scores, UNIT_BUCKETS), abs=1e-15)
    assert profile.source["data_file"] == "ref.npz"
    assert "created" in profile.source
    assert profile.classes == {}
    assert profile.features == {}


def test_build_profile_of_class_probabilities_gives_argmax_priors_and_class_histograms() -> None:
    rng = np.random.default_rng(11)
    logits = rng.normal(size=(600, 3)) + np.array([1.0, 0.0, -1.0])
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    profile = _build((), (TensorShape("p", "FP32", (3,)),), {}, {"p": probs}, metadata={"classes": "cat,dog,bird"})
    winners = [int(np.argmax(row)) for row in probs]
    names = ("cat", "dog", "bird")
    expected = {name: winners.count(i) / len(winners) for i, name in enumerate(names) if winners.count(i)}
    assert profile.classes == {"p": pytest.approx(expected, abs=1e-15)}
    assert set(profile.histograms) == {("p", name) for name in names}
    for i, name in enumerate(names):
        distribution = profile.histograms[("p", name)]
        assert distribution.edges == UNIT_BUCKETS
        assert list(distribution.proportions) == pytest.approx(_proportions(probs[:, i], UNIT_BUCKETS), abs=1e-15)


def test_build_profile_of_integer_labels_gives_their_frequencies() -> None:
    labels = np.array([0] * 30 + [1] * 10, dtype=np.int64)
    profile = _build((), (TensorShape("label", "INT64", (1,)),), {}, {"label": labels}, metadata={"labels": "no,yes"})
    assert profile.classes == {"label": {"no": 0.75, "yes": 0.25}}
    assert profile.samples == 40
    assert profile.histograms == {}


def test_build_profile_gives_unbounded_scores_quantile_edges() -> None:
    rng = np.random.default_rng(3)
    scores = rng.normal(50.0, 10.0, size=(500, 1))
    profile = _build((), (TensorShape("s", "FP64", (1,)),), {}, {"s": scores})
    distribution = profile.histograms[("s", "")]
    assert distribution.edges == _independent_quantile_edges(scores)
    assert len(distribution.edges) == QUANTILE_BUCKETS - 1
    assert list(distribution.proportions) == pytest.approx(_proportions(scores, distribution.edges), abs=1e-15)
    assert distribution.proportions[-1] == pytest.approx(0.1, abs=0.01)


def test_build_profile_keeps_configured_buckets_for_unbounded_scores() -> None:
    scores = np.array([[-5.0], [0.0], [5.0], [20.0]])
    config = TelemetryConfig(outputs={"s": OutputWatchConfig(buckets=(0.0, 10.0))})
    profile = _build((), (TensorShape("s", "FP64", (1,)),), {}, {"s": scores}, config=config)
    assert profile.histograms[("s", "")] == Distribution((0.0, 10.0), (0.5, 0.25, 0.25))


def test_build_profile_gives_features_quantile_edges() -> None:
    rng = np.random.default_rng(5)
    features = np.column_stack([rng.normal(size=400), rng.exponential(100.0, size=400)]).astype(np.float32)
    profile = _build(
        (TensorShape("x", "FP32", (2,)),),
        (TensorShape("s", "FP32", (1,)),),
        {"x": features},
        {"s": rng.random((400, 1))},
        config=TelemetryConfig(watch_inputs=True),
        metadata={"features": "z,amount"},
    )
    assert set(profile.features) == {("x", "z"), ("x", "amount")}
    for column, name in enumerate(("z", "amount")):
        distribution = profile.features[("x", name)]
        assert distribution.edges == _independent_quantile_edges(features[:, column])
        assert list(distribution.proportions) == pytest.approx(
            _proportions(features[:, column], distribution.edges), abs=1e-15
        )


def test_a_built_profile_survives_write_and_load(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    profile = _build(
        (TensorShape("x", "FP32", (1,)),),
        (TensorShape("s", "FP32", (1,)),),
        {"x": rng.normal(size=(200, 1))},
        {"s": rng.random((200, 1))},
        config=TelemetryConfig(watch_inputs=True),
    )
    path = tmp_path / "reference.json"
    write_profile(path, profile)
    loaded = load_profile(path)
    assert loaded.samples == profile.samples
    assert loaded.histograms.keys() == profile.histograms.keys()
    assert loaded.features.keys() == profile.features.keys() == {("x", "0")}
    for key, distribution in profile.histograms.items():
        assert loaded.histograms[key].edges == distribution.edges
        assert list(loaded.histograms[key].proportions) == pytest.approx(distribution.proportions, rel=1e-5)


def test_class_priors_must_be_finite_and_non_negative() -> None:
    data = {"format": 1, "samples": 3, "outputs": {"label": {"classes": {"a": -0.5, "b": 1.5}}}}
    with pytest.raises(ProfileError, match=r"outputs\.label\.classes"):
        ReferenceProfile.from_json(data, "p.json")


def test_a_feature_column_without_finite_values_keeps_the_unprofiled_buckets() -> None:
    inputs = {"x": np.stack([np.arange(100, dtype=np.float32), np.full(100, np.nan, np.float32)], axis=1)}
    outputs = {"y": np.linspace(0, 1, 100, dtype=np.float32)}
    profile = build_profile(
        (TensorShape("x", "FP32", (2,)),),
        (TensorShape("y", "FP32", ()),),
        TelemetryConfig(watch_inputs=True),
        {},
        inputs,
        outputs,
        {},
    )
    assert profile.features[("x", "1")].edges == (0.0,)
    assert len(profile.features[("x", "0")].edges) == 9
