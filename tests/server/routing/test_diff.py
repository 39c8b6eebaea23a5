"""Shadow comparison: labels equal, class scores by argmax, scores within a tolerance."""

from __future__ import annotations

import numpy as np

from server.routing.diff import compare


def test_equal_outputs_agree_with_zero_difference() -> None:
    outputs = {"scores": np.array([[0.2, 0.8]], np.float32), "label": np.array([1])}
    result = compare(outputs, dict(outputs), tolerance=0.0)
    assert result.agree and result.max_abs_diff == 0.0


def test_class_scores_agree_on_the_argmax_and_report_the_difference() -> None:
    primary = {"scores": np.array([[0.2, 0.8], [0.6, 0.4]], np.float32)}
    same_class = {"scores": np.array([[0.4, 0.6], [0.9, 0.1]], np.float32)}
    other_class = {"scores": np.array([[0.4, 0.6], [0.3, 0.7]], np.float32)}
    agreeing = compare(primary, same_class, tolerance=0.0)
    assert agreeing.agree and agreeing.max_abs_diff is not None and abs(agreeing.max_abs_diff - 0.3) < 1e-6
    assert not compare(primary, other_class, tolerance=1.0).agree


def test_scores_agree_within_the_tolerance() -> None:
    primary = {"y": np.array([[1.0], [2.0]], np.float32)}
    assert compare(primary, {"y": np.array([[1.0005], [2.0]], np.float32)}, tolerance=1e-3).agree
    assert not compare(primary, {"y": np.array([[1.01], [2.0]], np.float32)}, tolerance=1e-3).agree


def test_labels_must_be_equal() -> None:
    assert not compare({"label": np.array([0, 1])}, {"label": np.array([0, 0])}, tolerance=1.0).agree
    assert compare({"s": np.array([b"a"], dtype=object)}, {"s": np.array([b"a"], dtype=object)}, 0.0).agree


def test_missing_outputs_shape_changes_and_nan_disagree() -> None:
    primary = {"y": np.array([[1.0]], np.float32)}
    assert not compare(primary, {}, tolerance=1.0).agree
    assert not compare(primary, {"y": np.array([[1.0, 1.0]], np.float32)}, tolerance=1.0).agree
    nan = compare(primary, {"y": np.array([[np.nan]], np.float32)}, tolerance=1.0)
    assert not nan.agree and nan.max_abs_diff is None
