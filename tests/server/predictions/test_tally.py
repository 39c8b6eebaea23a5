"""server.predictions.tally: exact bucket and class counts, Prometheus "le" bucketing, bounded buffering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.predictions.config import MAX_CLASSES, OTHER_CLASS
from server.predictions.tally import (
    MAX_BUFFERED_ARRAYS,
    HistogramCounts,
    PredictionTally,
    Tallied,
    bucket_counts,
)
from server.predictions.watches import (
    UNIT_BUCKETS,
    ClassLabelWatch,
    ClassProbabilityWatch,
    FeatureWatch,
    ScoreWatch,
    WatchPlan,
)


def _counts(nonzero: dict[int, int], buckets: int) -> list[int]:
    """A per-bucket count list, zero except at the given indices."""
    return [nonzero.get(i, 0) for i in range(buckets)]


def _tally(*watches: ScoreWatch | ClassProbabilityWatch | ClassLabelWatch) -> PredictionTally:
    return PredictionTally(WatchPlan(tuple(watches)))


# ------------------------------------------------------------------ bucket_counts


def test_bucket_counts_on_unit_buckets_by_hand() -> None:
    counted = bucket_counts(np.array([0.05, 0.051, 1.0, 0.5, math.nan]), UNIT_BUCKETS)
    # 0.05 -> le 0.05 (index 0); 0.051 -> le 0.1 (1); 0.5 -> le 0.5 (9); 1.0 -> le 1.0 (19); NaN left out.
    assert counted.counts.tolist() == _counts({0: 1, 1: 1, 9: 1, 19: 1}, 21)
    assert counted.counts.dtype == np.int64
    assert counted.total == pytest.approx(0.05 + 0.051 + 1.0 + 0.5)
    assert counted.nonfinite == 1


@pytest.mark.parametrize(
    ("value", "bucket"),
    [(-5.0, 0), (0.0, 0), (1.0, 0), (1.0000001, 1), (2.0, 1), (3.0, 2), (3.5, 3), (1e300, 3)],
)
def test_a_value_equal_to_a_bound_goes_in_that_bound_bucket(value: float, bucket: int) -> None:
    counted = bucket_counts(np.array([value]), (1.0, 2.0, 3.0))
    assert counted.counts.tolist() == _counts({bucket: 1}, 4)
    assert counted.nonfinite == 0


def test_float32_values_are_compared_in_their_own_precision() -> None:
    # float32(0.05) is 0.0500000007 as a double: it still sits on the 0.05 bound, as the model meant.
    on_bound = bucket_counts(np.array([0.05, 0.1, 1.0], dtype=np.float32), UNIT_BUCKETS)
    assert on_bound.counts.tolist() == _counts({0: 1, 1: 1, 19: 1}, 21)
    above = bucket_counts(np.array([float(np.float32(0.05))], dtype=np.float64), UNIT_BUCKETS)
    assert above.counts.tolist() == _counts({1: 1}, 21)


def test_nonfinite_values_are_excluded_from_buckets_and_sum() -> None:
    counted = bucket_counts(np.array([math.inf, -math.inf, math.nan, 0.25, 2.0]), (0.5, 1.0))
    assert counted.counts.tolist() == [1, 0, 1]
    assert counted.total == 2.25
    assert counted.nonfinite == 3


def test_bucket_counts_flattens_any_shape_and_dtype() -> None:
    counted = bucket_counts(np.array([[1, 2], [3, 4]], dtype=np.int32), (2.0,))
    assert counted.counts.tolist() == [2, 2]
    assert counted.total == 10.0


def test_bucket_counts_of_nothing_is_all_zero() -> None:
    counted = bucket_counts(np.array([], dtype=np.float32), (0.5, 1.0))
    assert counted.counts.tolist() == [0, 0, 0]
    assert (counted.total, counted.nonfinite) == (0.0, 0)


def test_no_finite_edges_puts_everything_in_the_inf_bucket() -> None:
    assert bucket_counts(np.array([-1.0, 0.0, 7.0]), ()).counts.tolist() == [3]


def test_histogram_counts_add() -> None:
    a = HistogramCounts(np.array([1, 2, 0], dtype=np.int64), 3.5, 1)
    a.add(HistogramCounts(np.array([0, 1, 4], dtype=np.int64), 1.5, 2))
    assert a.counts.tolist() == [1, 3, 4]
    assert (a.total, a.nonfinite) == (5.0, 3)


# ------------------------------------------------------------------ scores


def test_scores_accumulate_over_batches_until_drained() -> None:
    tally = _tally(ScoreWatch("s", (0.5,)))
    tally.observe({"s": np.array([[0.1], [0.5]], dtype=np.float32)})
    tally.observe({"s": np.array([0.7, math.nan])})
    tally.observe({"other": np.array([0.9])})  # not watched
    counted = tally.drain()
    assert set(counted.histograms) == {("s", "")}
    histogram = counted.histograms[("s", "")]
    assert histogram.counts.tolist() == [2, 1]
    assert histogram.total == pytest.approx(0.1 + 0.5 + 0.7)
    assert histogram.nonfinite == 1
    assert counted.classes == {}
    assert counted.features == {}


def test_drain_empties_the_tally() -> None:
    tally = _tally(ScoreWatch("s", (0.5,)))
    tally.observe({"s": np.array([0.2])})
    assert not tally.drain().empty
    second = tally.drain()
    assert second.empty
    assert second == Tallied()


def test_a_batch_without_the_watched_output_counts_nothing() -> None:
    tally = _tally(ScoreWatch("s", UNIT_BUCKETS))
    tally.observe({"t": np.array([0.2])})
    assert tally.drain().empty


def test_early_counting_past_max_buffered_arrays_keeps_totals_exact() -> None:
    tally = _tally(ScoreWatch("s", (0.5,)))
    batches = 2 * MAX_BUFFERED_ARRAYS + 7
    for i in range(batches):
        tally.observe({"s": np.array([0.25, 0.75] if i % 2 else [1.5])})
    counted = tally.drain()
    odd = batches // 2
    even = batches - odd
    assert counted.histograms[("s", "")].counts.tolist() == [odd, odd + even]
    assert counted.histograms[("s", "")].total == pytest.approx(odd * 1.0 + even * 1.5)
    assert tally.drain().empty


def test_early_counting_keeps_class_and_feature_totals_exact() -> None:
    plan = WatchPlan(
        (ClassLabelWatch("label", ("no", "yes")),),
        (FeatureWatch("x", ("a", "b"), ((0.0,), (10.0,))),),
    )
    tally = PredictionTally(plan)
    batches = MAX_BUFFERED_ARRAYS + 3
    for _ in range(batches):
        tally.observe({"label": np.array([0, 1, 1])}, {"x": np.array([[-1.0, 5.0], [2.0, 20.0]])})
    counted = tally.drain()
    assert counted.classes == {("label", "no"): batches, ("label", "yes"): 2 * batches}
    assert counted.features[("x", "a")].counts.tolist() == [batches, batches]
    assert counted.features[("x", "b")].counts.tolist() == [batches, batches]


# ------------------------------------------------------------------ class probabilities


def test_class_probabilities_count_the_argmax_and_per_class_histograms() -> None:
    tally = _tally(ClassProbabilityWatch("p", ("cat", "dog", "bird"), (0.5,)))
    tally.observe({"p": np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]])})
    tally.observe({"p": np.array([[0.2, 0.2, 0.6], [0.8, 0.1, 0.1], [0.5, 0.5, 0.0]])})  # a tie: the first
    counted = tally.drain()
    assert counted.classes == {("p", "cat"): 3, ("p", "dog"): 1, ("p", "bird"): 1}
    assert counted.histograms[("p", "cat")].counts.tolist() == [3, 2]  # 0.2, 0.1, 0.5 | 0.7, 0.8
    assert counted.histograms[("p", "dog")].counts.tolist() == [4, 1]  # only 0.6 > 0.5
    assert counted.histograms[("p", "bird")].counts.tolist() == [4, 1]
    assert set(counted.histograms) == {("p", "cat"), ("p", "dog"), ("p", "bird")}


def test_nan_scores_do_not_win_the_argmax() -> None:
    tally = _tally(ClassProbabilityWatch("p", ("a", "b"), None))
    tally.observe({"p": np.array([[math.nan, 0.1], [0.3, math.nan]])})
    assert tally.drain().classes == {("p", "b"): 1, ("p", "a"): 1}


def test_class_probabilities_without_histograms_count_classes_only() -> None:
    tally = _tally(ClassProbabilityWatch("p", ("a", "b"), None))
    tally.observe({"p": np.array([[0.1, 0.9]])})
    counted = tally.drain()
    assert counted.classes == {("p", "b"): 1}
    assert counted.histograms == {}


def test_columns_past_max_classes_are_counted_as_other() -> None:
    columns = MAX_CLASSES + 5
    names = tuple(str(i) for i in range(columns))
    rows = np.zeros((4, columns))
    for row, winner in enumerate([3, MAX_CLASSES, MAX_CLASSES + 4, 3]):
        rows[row, winner] = 1.0
    tally = _tally(ClassProbabilityWatch("p", names, None))
    tally.observe({"p": rows})
    assert tally.drain().classes == {("p", "3"): 2, ("p", OTHER_CLASS): 2}


def test_a_width_that_does_not_match_the_signature_counts_nothing() -> None:
    tally = _tally(ClassProbabilityWatch("p", ("a", "b", "c"), (0.5,)))
    tally.observe({"p": np.array([[0.1, 0.9]])})
    assert tally.drain().empty


# ------------------------------------------------------------------ integer labels


def test_integer_labels_are_named_from_class_names() -> None:
    tally = _tally(ClassLabelWatch("label", ("legit", "fraud")))
    tally.observe({"label": np.array([0, 1, 1, 0, 0], dtype=np.int64)})
    tally.observe({"label": np.array([[1], [5], [-1]], dtype=np.int32)})
    assert tally.drain().classes == {
        ("label", "legit"): 3,
        ("label", "fraud"): 3,
        ("label", "5"): 1,  # past the names: the value itself
        ("label", OTHER_CLASS): 1,  # negative
    }


def test_integer_labels_without_names_are_their_value_up_to_max_classes() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    tally.observe({"label": np.array([7, 7, MAX_CLASSES - 1, MAX_CLASSES, MAX_CLASSES + 100], dtype=np.uint16)})
    assert tally.drain().classes == {
        ("label", "7"): 2,
        ("label", str(MAX_CLASSES - 1)): 1,
        ("label", OTHER_CLASS): 2,
    }


def test_boolean_labels_count_as_zero_and_one() -> None:
    tally = _tally(ClassLabelWatch("label", ("no", "yes")))
    tally.observe({"label": np.array([True, False, True])})
    assert tally.drain().classes == {("label", "no"): 1, ("label", "yes"): 2}


def test_an_empty_label_batch_counts_nothing() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    tally.observe({"label": np.array([], dtype=np.int64)})
    assert tally.drain().empty


# ------------------------------------------------------------------ string labels


def test_string_labels_bytes_and_str_count_together() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    tally.observe({"label": np.array([b"cat", b"dog", b"cat"], dtype=object)})
    tally.observe({"label": np.array(["cat", "bird"], dtype=object)})
    tally.observe({"label": np.array([b"dog"], dtype="S3")})
    tally.observe({"label": np.array(["bird"], dtype="U4")})
    assert tally.drain().classes == {("label", "cat"): 3, ("label", "dog"): 2, ("label", "bird"): 2}


def test_string_labels_outside_class_names_are_other() -> None:
    tally = _tally(ClassLabelWatch("label", ("cat", "dog")))
    tally.observe({"label": np.array([b"cat", b"emu", "dog", "yak", "cat"], dtype=object)})
    assert tally.drain().classes == {("label", "cat"): 2, ("label", "dog"): 1, ("label", OTHER_CLASS): 2}


def test_undecodable_bytes_are_counted_with_replacement_characters() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    tally.observe({"label": np.array([b"\xff"], dtype=object)})
    assert tally.drain().classes == {("label", "\ufffd"): 1}


def test_the_first_max_classes_strings_seen_become_labels_and_later_ones_are_other() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    first = [f"k{i:02d}" for i in range(MAX_CLASSES)]
    tally.observe({"label": np.array(first, dtype=object)})
    assert tally.drain().classes == {("label", text): 1 for text in first}
    # Labels seen before keep their names; new values share "other", in this drain and the next.
    tally.observe({"label": np.array(["new1", "k00", "new2", "new1"], dtype=object)})
    assert tally.drain().classes == {("label", "k00"): 1, ("label", OTHER_CLASS): 3}
    tally.observe({"label": np.array(["k49", "new3"], dtype=object)})
    assert tally.drain().classes == {("label", "k49"): 1, ("label", OTHER_CLASS): 1}


def test_string_label_sets_are_kept_per_output() -> None:
    tally = _tally(ClassLabelWatch("a", ()), ClassLabelWatch("b", ()))
    tally.observe({"a": np.array([f"v{i}" for i in range(MAX_CLASSES)], dtype=object)})
    tally.drain()
    tally.observe({"a": np.array(["fresh"], dtype=object), "b": np.array(["fresh"], dtype=object)})
    assert tally.drain().classes == {("a", OTHER_CLASS): 1, ("b", "fresh"): 1}


def test_the_first_strings_seen_within_one_drain_become_labels() -> None:
    tally = _tally(ClassLabelWatch("label", ()))
    values = ["zzz", *(f"a{i:02d}" for i in range(MAX_CLASSES))]  # "zzz" seen first, 51 distinct
    tally.observe({"label": np.array(values, dtype=object)})
    classes = tally.drain().classes
    assert classes.get(("label", "zzz")) == 1
    assert classes.get(("label", OTHER_CLASS)) == 1  # a49, the 51st value seen


# ------------------------------------------------------------------ features


def test_features_are_bucketed_per_column_on_their_own_edges() -> None:
    plan = WatchPlan((), (FeatureWatch("x", ("amount", "age"), ((100.0,), (18.0, 65.0))),))
    tally = PredictionTally(plan)
    tally.observe({}, {"x": np.array([[50.0, 18.0], [100.0, 30.0]])})
    tally.observe({}, {"x": np.array([[150.0, 70.0], [math.nan, 65.0]], dtype=np.float32)})
    counted = tally.drain()
    amount, age = counted.features[("x", "amount")], counted.features[("x", "age")]
    assert amount.counts.tolist() == [2, 1]
    assert (amount.total, amount.nonfinite) == (300.0, 1)
    assert age.counts.tolist() == [1, 2, 1]
    assert age.total == 183.0


def test_inputs_are_ignored_when_not_passed() -> None:
    tally = PredictionTally(WatchPlan((), (FeatureWatch("x", ("a",), ((0.0,),)),)))
    tally.observe({"x": np.array([[1.0]])})
    tally.observe({}, None)
    assert tally.drain().empty


def test_feature_columns_past_the_input_width_are_skipped() -> None:
    tally = PredictionTally(WatchPlan((), (FeatureWatch("x", ("a", "b", "c"), ((0.0,), (0.0,), (0.0,))),)))
    tally.observe({}, {"x": np.array([[1.0, -1.0]])})
    assert set(tally.drain().features) == {("x", "a"), ("x", "b")}


def test_a_probability_row_without_any_number_predicts_no_class() -> None:
    tally = _tally(ClassProbabilityWatch("p", ("a", "b"), None))
    tally.observe({"p": np.array([[np.nan, np.nan], [0.2, 0.8], [np.nan, 0.1]], dtype=np.float32)})
    assert tally.drain().classes == {("p", "b"): 2}
