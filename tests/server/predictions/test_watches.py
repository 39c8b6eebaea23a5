"""server.predictions.watches: which outputs and inputs are watched, with which labels and bucket edges."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from server.predictions.config import MAX_CLASSES, OTHER_CLASS, OutputWatchConfig, TelemetryConfig
from server.predictions.profile import Distribution, ReferenceProfile
from server.predictions.watches import (
    MAX_PROBABILITY_CLASSES,
    UNIT_BUCKETS,
    UNPROFILED_FEATURE_EDGES,
    ClassLabelWatch,
    ClassProbabilityWatch,
    FeatureWatch,
    ScoreWatch,
    TensorShape,
    WatchPlan,
    class_label,
    names_from_metadata,
    plan_watches,
)


def _plan_one(
    spec: TensorShape,
    config: TelemetryConfig | None = None,
    metadata: dict[str, str] | None = None,
    profile: ReferenceProfile | None = None,
) -> Any:
    plan = plan_watches([], [spec], config or TelemetryConfig(), metadata or {}, profile)
    assert len(plan.outputs) <= 1
    return plan.outputs[0] if plan.outputs else None


def _config(**outputs: OutputWatchConfig) -> TelemetryConfig:
    return TelemetryConfig(outputs=outputs)


def test_unit_buckets_are_twenty_equal_steps_up_to_one() -> None:
    assert len(UNIT_BUCKETS) == 20
    assert UNIT_BUCKETS[0] == 0.05
    assert UNIT_BUCKETS[9] == 0.5
    assert UNIT_BUCKETS[-1] == 1.0
    assert all(b > a for a, b in itertools.pairwise(UNIT_BUCKETS))


@pytest.mark.parametrize(
    ("datatype", "sample_shape", "expected"),
    [
        ("FP32", (), ScoreWatch),
        ("FP32", (1,), ScoreWatch),
        ("FP64", (1,), ScoreWatch),
        ("FP16", (), ScoreWatch),
        ("BF16", (1,), ScoreWatch),
        ("FP32", (2,), ClassProbabilityWatch),
        ("FP32", (MAX_PROBABILITY_CLASSES,), ClassProbabilityWatch),
        ("FP32", (MAX_PROBABILITY_CLASSES + 1,), None),  # an embedding
        ("FP32", (-1,), None),  # variable width
        ("FP32", (2, 3), None),  # an image or sequence
        ("INT64", (), ClassLabelWatch),
        ("INT32", (1,), ClassLabelWatch),
        ("UINT8", (1,), ClassLabelWatch),
        ("BYTES", (1,), ClassLabelWatch),
        ("BYTES", (), ClassLabelWatch),
        ("INT64", (3,), None),
        ("BYTES", (2,), None),
        ("BOOL", (1,), None),
    ],
)
def test_auto_kind_is_inferred_from_datatype_and_sample_shape(
    datatype: str, sample_shape: tuple[int, ...], expected: type | None
) -> None:
    watch = _plan_one(TensorShape("y", datatype, sample_shape))
    if expected is None:
        assert watch is None
    else:
        assert type(watch) is expected
        assert watch.output == "y"


def test_a_score_defaults_to_unit_buckets() -> None:
    assert _plan_one(TensorShape("s", "FP32", (1,))) == ScoreWatch("s", UNIT_BUCKETS)


def test_off_disables_an_output_that_would_be_watched() -> None:
    config = _config(s=OutputWatchConfig(kind="off"))
    plan = plan_watches([], [TensorShape("s", "FP32", (1,)), TensorShape("t", "FP32", (1,))], config, {})
    assert plan.outputs == (ScoreWatch("t", UNIT_BUCKETS),)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("score", ScoreWatch("y", UNIT_BUCKETS)),
        ("class", ClassLabelWatch("y", ())),
    ],
)
def test_an_explicit_kind_overrides_inference(kind: Any, expected: object) -> None:
    # A [N, 4] float output would be class probabilities; the config says otherwise.
    assert _plan_one(TensorShape("y", "FP32", (4,)), _config(y=OutputWatchConfig(kind=kind))) == expected


def test_explicit_class_probabilities_of_a_single_column_take_the_width_from_class_names() -> None:
    config = _config(y=OutputWatchConfig(kind="class_probabilities", class_names=("a", "b", "c")))
    watch = _plan_one(TensorShape("y", "FP32", (-1,)), config)
    assert watch == ClassProbabilityWatch("y", ("a", "b", "c"), UNIT_BUCKETS)


def test_class_names_come_from_config_before_metadata() -> None:
    config = _config(p=OutputWatchConfig(class_names=("legit", "fraud")))
    watch = _plan_one(TensorShape("p", "FP32", (2,)), config, {"classes": "x,y"})
    assert watch.class_names == ("legit", "fraud")


def test_class_names_come_from_onnx_metadata_when_not_configured() -> None:
    watch = _plan_one(TensorShape("p", "FP32", (3,)), metadata={"classes": " cat, dog ,bird "})
    assert watch == ClassProbabilityWatch("p", ("cat", "dog", "bird"), UNIT_BUCKETS)


def test_missing_class_names_fall_back_to_the_column_index() -> None:
    watch = _plan_one(TensorShape("p", "FP32", (4,)), metadata={"classes": "cat,dog"})
    assert watch.class_names == ("cat", "dog", "2", "3")


def test_label_outputs_carry_the_names_as_given() -> None:
    watch = _plan_one(TensorShape("label", "INT64", (1,)), metadata={"labels": "no,yes"})
    assert watch == ClassLabelWatch("label", ("no", "yes"))


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ({}, ()),
        ({"classes": "a,b"}, ("a", "b")),
        ({"class_names": "c , d"}, ("c", "d")),
        ({"labels": "e"}, ("e",)),
        ({"classes": "a", "class_names": "b", "labels": "c"}, ("a",)),  # the first key present wins
        ({"classes": "   ", "labels": "c"}, ("c",)),  # a blank value does not count as present
        ({"other": "x,y"}, ()),
    ],
)
def test_names_from_metadata_takes_the_first_non_blank_key(metadata: dict[str, str], expected: tuple[str, ...]) -> None:
    assert names_from_metadata(metadata, ("classes", "class_names", "labels")) == expected


@pytest.mark.parametrize(
    ("columns", "class_histograms_max", "has_histograms"),
    [(2, 10, True), (10, 10, True), (11, 10, False), (3, 0, False), (MAX_CLASSES, MAX_CLASSES, True)],
)
def test_per_class_histograms_only_up_to_class_histograms_max(
    columns: int, class_histograms_max: int, has_histograms: bool
) -> None:
    config = TelemetryConfig(class_histograms_max=class_histograms_max)
    watch = _plan_one(TensorShape("p", "FP32", (columns,)), config)
    assert len(watch.class_names) == columns
    assert watch.histogram_edges == (UNIT_BUCKETS if has_histograms else None)


def test_many_columns_keep_one_name_per_column_and_fold_past_max_classes() -> None:
    watch = _plan_one(TensorShape("p", "FP32", (MAX_CLASSES + 10,)))
    assert watch.class_names == tuple(str(i) for i in range(MAX_CLASSES + 10))
    assert watch.histogram_edges is None
    assert class_label(watch.class_names, MAX_CLASSES - 1) == str(MAX_CLASSES - 1)
    assert class_label(watch.class_names, MAX_CLASSES) == OTHER_CLASS


@pytest.mark.parametrize(
    ("names", "index", "expected"),
    [
        (("a", "b"), 0, "a"),
        (("a", "b"), 1, "b"),
        (("a", "b"), 2, "2"),
        ((), 7, "7"),
        (("a", "b"), -1, OTHER_CLASS),
        ((), MAX_CLASSES - 1, str(MAX_CLASSES - 1)),
        ((), MAX_CLASSES, OTHER_CLASS),
        (tuple(f"c{i}" for i in range(60)), 55, OTHER_CLASS),
    ],
)
def test_class_label(names: tuple[str, ...], index: int, expected: str) -> None:
    assert class_label(names, index) == expected


def _profile_with_score_edges(output: str, edges: tuple[float, ...]) -> ReferenceProfile:
    distribution = Distribution(edges, (1.0,) + (0.0,) * len(edges))
    return ReferenceProfile(10, histograms={(output, ""): distribution})


def test_edges_come_from_config_before_profile() -> None:
    config = _config(s=OutputWatchConfig(buckets=(1.0, 2.0)))
    watch = _plan_one(TensorShape("s", "FP32", (1,)), config, profile=_profile_with_score_edges("s", (5.0, 6.0)))
    assert watch == ScoreWatch("s", (1.0, 2.0))


def test_edges_come_from_the_profile_before_unit_buckets() -> None:
    watch = _plan_one(TensorShape("s", "FP32", (1,)), profile=_profile_with_score_edges("s", (5.0, 6.0)))
    assert watch == ScoreWatch("s", (5.0, 6.0))


def test_a_profile_without_the_output_leaves_unit_buckets() -> None:
    watch = _plan_one(TensorShape("s", "FP32", (1,)), profile=_profile_with_score_edges("other", (5.0, 6.0)))
    assert watch == ScoreWatch("s", UNIT_BUCKETS)


def test_class_probability_histograms_use_the_profile_per_class_edges() -> None:
    profile = ReferenceProfile(
        10,
        histograms={
            ("p", "b"): Distribution((0.3, 0.6), (0.2, 0.3, 0.5)),
            ("p", "a"): Distribution((0.1, 0.2), (0.2, 0.3, 0.5)),
        },
    )
    watch = _plan_one(TensorShape("p", "FP32", (2,)), metadata={"classes": "a,b"}, profile=profile)
    assert watch.histogram_edges == (0.1, 0.2)  # the first per-class histogram, in sorted order


def test_disabled_telemetry_plans_nothing() -> None:
    plan = plan_watches(
        [TensorShape("x", "FP32", (4,))],
        [TensorShape("s", "FP32", (1,))],
        TelemetryConfig(enabled=False, watch_inputs=True),
        {},
    )
    assert plan == WatchPlan()
    assert plan.empty


def test_inputs_are_not_watched_unless_configured() -> None:
    plan = plan_watches([TensorShape("x", "FP32", (4,))], [TensorShape("s", "FP32", (1,))], TelemetryConfig(), {})
    assert plan.inputs == ()
    assert not plan.empty


def test_feature_watches_name_columns_from_metadata_and_use_unprofiled_edges() -> None:
    config = TelemetryConfig(watch_inputs=True)
    plan = plan_watches([TensorShape("x", "FP32", (3,))], [], config, {"features": "amount, age"})
    assert plan.inputs == (FeatureWatch("x", ("amount", "age", "2"), (UNPROFILED_FEATURE_EDGES,) * 3),)
    assert plan.outputs == ()
    assert not plan.empty


def test_feature_watches_stop_at_max_features() -> None:
    config = TelemetryConfig(watch_inputs=True, max_features=5)
    (watch,) = plan_watches([TensorShape("x", "FP64", (40,))], [], config, {}).inputs
    assert watch.feature_names == ("0", "1", "2", "3", "4")
    assert len(watch.edges) == 5


def test_feature_edges_come_from_the_profile_where_it_has_them() -> None:
    profile = ReferenceProfile(10, features={("x", "1"): Distribution((-1.0, 1.0), (0.25, 0.5, 0.25))})
    config = TelemetryConfig(watch_inputs=True)
    (watch,) = plan_watches([TensorShape("x", "FP32", (2,))], [], config, {}, profile).inputs
    assert watch.edges == (UNPROFILED_FEATURE_EDGES, (-1.0, 1.0))


@pytest.mark.parametrize(
    "spec",
    [
        TensorShape("x", "INT64", (4,)),  # not floats
        TensorShape("x", "BYTES", (4,)),
        TensorShape("x", "FP32", ()),  # not 2-D
        TensorShape("x", "FP32", (3, 4)),  # images
        TensorShape("x", "FP32", (-1,)),  # variable width
        TensorShape("x", "FP32", (0,)),
    ],
)
def test_only_fixed_width_2d_float_inputs_get_feature_watches(spec: TensorShape) -> None:
    assert plan_watches([spec], [], TelemetryConfig(watch_inputs=True), {}).inputs == ()
