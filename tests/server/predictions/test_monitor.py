"""server.predictions.monitor: drift scores from fake cumulative counters and a fake clock."""

from __future__ import annotations

import logging

import pytest

from server.predictions.config import DriftConfig
from server.predictions.drift import js_distance, psi
from server.predictions.monitor import (
    DriftMonitor,
    DriftScore,
    LiveCounts,
    Series,
    VersionReference,
    compare,
    reference_of,
)
from server.predictions.profile import Distribution, ReferenceProfile

SCORES = Series("histogram", "scores")
FRAUD = Series("histogram", "scores", "fraud")
LABEL = Series("classes", "label")
AMOUNT = Series("feature", "x", "amount")
BOUNDS = ("0.25", "0.5", "0.75", "+Inf")
UNIFORM = (0.25, 0.25, 0.25, 0.25)

PROFILE = ReferenceProfile(
    samples=1000,
    histograms={
        ("scores", ""): Distribution((0.25, 0.5, 0.75), UNIFORM),
        ("scores", "fraud"): Distribution((0.5,), (0.8, 0.2)),
    },
    classes={"label": {"legit": 0.9, "fraud": 0.1}},
    features={("x", "amount"): Distribution((10.0,), (0.5, 0.5))},
)


def _buckets(*counts: float, bounds: tuple[str, ...] = BOUNDS) -> dict[str, float]:
    return dict(zip(bounds, counts, strict=True))


class Rig:
    """A monitor over counters and a clock the test sets."""

    def __init__(
        self,
        config: DriftConfig | None = None,
        profile: ReferenceProfile | None = PROFILE,
        references: dict[tuple[str, int], VersionReference | None] | None = None,
    ) -> None:
        self.now = 0.0
        self.counters: dict[tuple[str, int, Series], dict[str, float]] = {}
        self.reference = VersionReference(config or DriftConfig(min_samples=100, interval_s=5.0), profile)
        self.references = references
        self.monitor = DriftMonitor(live=self._live, references=self._reference_of, clock=lambda: self.now)

    def _live(self) -> LiveCounts:
        return {key: dict(counts) for key, counts in self.counters.items()}

    def _reference_of(self, model: str, version: int) -> VersionReference | None:
        if self.references is not None:
            return self.references.get((model, version))
        return self.reference

    def set(self, series: Series, counts: dict[str, float], model: str = "m", version: int = 1) -> None:
        self.counters[(model, version, series)] = counts

    def sample_at(self, now: float) -> None:
        self.now = now
        self.monitor.sample()

    def scores(self) -> dict[tuple[str, int, Series, str], DriftScore]:
        return {(s.model, s.version, s.series, s.method): s for s in self.monitor.scores()}


@pytest.mark.parametrize(
    ("series", "label"),
    [
        (SCORES, "scores"),
        (FRAUD, "scores[fraud]"),
        (LABEL, "label"),
        (Series("feature", "features", "amount"), "features[amount]"),
    ],
)
def test_series_label(series: Series, label: str) -> None:
    assert series.label == label


def test_reference_of_picks_the_distribution_by_series_kind() -> None:
    assert reference_of(PROFILE, SCORES) == PROFILE.histograms[("scores", "")]
    assert reference_of(PROFILE, FRAUD) == PROFILE.histograms[("scores", "fraud")]
    assert reference_of(PROFILE, LABEL) == {"legit": 0.9, "fraud": 0.1}
    assert reference_of(PROFILE, AMOUNT) == PROFILE.features[("x", "amount")]
    assert reference_of(PROFILE, Series("histogram", "absent")) is None
    assert reference_of(PROFILE, Series("classes", "scores")) is None


def test_compare_orders_live_buckets_by_bound() -> None:
    live = {"+Inf": 4.0, "0.75": 3.0, "0.25": 1.0, "0.5": 2.0}
    assert compare(PROFILE.histograms[("scores", "")], live) == (list(UNIFORM), [1.0, 2.0, 3.0, 4.0])
    # Bounds written differently (as Prometheus does: "1.0") still match the edges.
    assert compare(Distribution((1.0,), (0.5, 0.5)), {"1.0": 3.0, "+Inf": 1.0}) == ([0.5, 0.5], [3.0, 1.0])


@pytest.mark.parametrize(
    "live",
    [
        {"0.25": 1.0, "0.5": 1.0, "+Inf": 1.0},  # a bucket fewer
        {"0.25": 1.0, "0.5": 1.0, "0.8": 1.0, "+Inf": 1.0},  # another bound
        {"0.25": 1.0, "0.5": 1.0, "0.75": 1.0, "1.0": 1.0},  # no +Inf
    ],
)
def test_compare_refuses_buckets_that_differ(live: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="live buckets differ"):
        compare(PROFILE.histograms[("scores", "")], live)


def test_compare_aligns_classes() -> None:
    assert compare({"legit": 0.9, "fraud": 0.1}, {"legit": 5.0, "new": 1.0}) == ([0.1, 0.9, 0.0], [0.0, 5.0, 1.0])


def test_no_score_before_min_samples() -> None:
    rig = Rig(DriftConfig(min_samples=200, interval_s=5.0))
    rig.set(SCORES, _buckets(0, 0, 0, 0))
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(50, 50, 50, 49))
    rig.sample_at(5.0)
    assert rig.scores() == {}
    rig.set(SCORES, _buckets(50, 50, 50, 50))
    rig.sample_at(10.0)
    assert set(rig.scores()) == {("m", 1, SCORES, "psi"), ("m", 1, SCORES, "js")}
    assert rig.scores()[("m", 1, SCORES, "psi")].samples == 200


def test_the_same_distribution_scores_near_zero() -> None:
    rig = Rig()
    rig.set(SCORES, _buckets(0, 0, 0, 0))
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(52, 47, 50, 51))
    rig.sample_at(5.0)
    scores = rig.scores()
    assert scores[("m", 1, SCORES, "psi")] == DriftScore(
        "m", 1, SCORES, "psi", psi(UNIFORM, [52, 47, 50, 51]), samples=200
    )
    assert scores[("m", 1, SCORES, "psi")].value < 0.1
    assert scores[("m", 1, SCORES, "js")].value == pytest.approx(js_distance(UNIFORM, [52, 47, 50, 51]))
    assert scores[("m", 1, SCORES, "js")].value < 0.1


def test_a_shifted_distribution_scores_above_the_significant_threshold() -> None:
    rig = Rig()
    rig.set(SCORES, _buckets(0, 0, 0, 0))
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(0, 10, 40, 150))
    rig.sample_at(5.0)
    assert rig.scores()[("m", 1, SCORES, "psi")].value > 0.25
    assert rig.scores()[("m", 1, SCORES, "js")].value > 0.25


def test_counters_at_first_sight_count_as_recent_traffic() -> None:
    rig = Rig()
    rig.set(SCORES, _buckets(50, 50, 50, 50))
    rig.sample_at(100.0)
    assert rig.scores()[("m", 1, SCORES, "psi")].samples == 200


def test_only_the_window_is_scored_not_the_whole_history() -> None:
    rig = Rig(DriftConfig(min_samples=100, interval_s=5.0, window_s=5.0))
    rig.set(SCORES, _buckets(0, 0, 0, 0))
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(1000, 1000, 1000, 1000))
    rig.sample_at(5.0)
    assert rig.scores()[("m", 1, SCORES, "psi")].value < 0.1
    rig.set(SCORES, _buckets(1000, 1000, 1000, 1200))  # the last 5 s: everything above 0.75
    rig.sample_at(10.0)
    score = rig.scores()[("m", 1, SCORES, "psi")]
    assert score.samples == 200
    assert score.value == pytest.approx(psi(UNIFORM, [0, 0, 0, 200]))
    assert score.value > 0.25


def test_windows_advance_only_every_interval() -> None:
    rig = Rig()
    rig.set(SCORES, _buckets(0, 0, 0, 0))
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(50, 50, 50, 50))
    rig.sample_at(5.0)
    before = rig.scores()
    rig.set(SCORES, _buckets(50, 50, 50, 1000))
    rig.sample_at(9.9)  # not due until 10.0: nothing changes
    assert rig.scores() == before
    rig.sample_at(10.0)
    assert rig.scores()[("m", 1, SCORES, "psi")].value > 0.25


def test_class_and_feature_series_are_scored_against_their_reference() -> None:
    rig = Rig()
    rig.set(LABEL, {"legit": 0.0, "fraud": 0.0})
    rig.set(AMOUNT, _buckets(0, 0, bounds=("10.0", "+Inf")))
    rig.sample_at(0.0)
    rig.set(LABEL, {"legit": 180.0, "fraud": 20.0})
    rig.set(AMOUNT, _buckets(10, 190, bounds=("10.0", "+Inf")))
    rig.sample_at(5.0)
    scores = rig.scores()
    assert scores[("m", 1, LABEL, "psi")].value == pytest.approx(0.0, abs=1e-12)
    assert scores[("m", 1, AMOUNT, "psi")].value == pytest.approx(psi([0.5, 0.5], [10, 190]))
    assert scores[("m", 1, AMOUNT, "psi")].value > 0.25


def test_mismatched_buckets_give_no_score_and_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="server.predictions.monitor")
    rig = Rig()
    odd = ("0.1", "+Inf")
    rig.set(SCORES, _buckets(0, 0, bounds=odd))
    for step in range(4):
        rig.set(SCORES, _buckets(100 * step, 100 * step, bounds=odd))
        rig.sample_at(5.0 * step)
    assert rig.scores() == {}
    warnings = [r for r in caplog.records if r.name == "server.predictions.monitor"]
    assert len(warnings) == 1
    assert warnings[0].getMessage() == "drift not scored"
    assert warnings[0].__dict__["output"] == "scores"
    assert warnings[0].__dict__["version"] == 1


def test_series_without_a_reference_or_profile_get_no_score() -> None:
    rig = Rig(references={("m", 1): VersionReference(DriftConfig(min_samples=1), None), ("m", 2): None})
    rig.set(SCORES, _buckets(50, 50, 50, 50), version=1)
    rig.set(SCORES, _buckets(50, 50, 50, 50), version=2)
    rig.set(Series("histogram", "unprofiled"), _buckets(50, 50, 50, 50), version=1)
    rig.sample_at(0.0)
    assert rig.scores() == {}


def test_versions_that_disappear_are_forgotten() -> None:
    rig = Rig()
    for version in (1, 2):
        rig.set(SCORES, _buckets(0, 0, 0, 0), version=version)
    rig.sample_at(0.0)
    for version in (1, 2):
        rig.set(SCORES, _buckets(50, 50, 50, 50), version=version)
    rig.sample_at(5.0)
    assert {(model, version) for model, version, _, _ in rig.scores()} == {("m", 1), ("m", 2)}
    assert rig.monitor.distance("m", 1, 2, min_samples=100) is not None
    del rig.counters[("m", 2, SCORES)]
    rig.sample_at(10.0)
    assert {(model, version) for model, version, _, _ in rig.scores()} == {("m", 1)}
    assert rig.monitor.distance("m", 1, 2, min_samples=1) is None
    # Back again: a fresh window, counting from what the counters hold now.
    rig.set(SCORES, _buckets(60, 60, 60, 60), version=2)
    rig.sample_at(15.0)
    assert rig.scores()[("m", 2, SCORES, "psi")].samples == 240


def test_distance_is_the_largest_psi_between_versions_and_names_its_series() -> None:
    rig = Rig(profile=None)
    rig.set(SCORES, _buckets(0, 0, 0, 0), version=1)
    rig.set(SCORES, _buckets(0, 0, 0, 0), version=2)
    rig.set(FRAUD, _buckets(0, 0, bounds=("0.5", "+Inf")), version=1)
    rig.set(FRAUD, _buckets(0, 0, bounds=("0.5", "+Inf")), version=2)
    rig.set(LABEL, {"legit": 0.0}, version=1)
    rig.set(LABEL, {"legit": 0.0}, version=2)
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(50, 50, 50, 50), version=1)
    rig.set(SCORES, _buckets(45, 55, 50, 50), version=2)  # a little different
    rig.set(FRAUD, _buckets(160, 40, bounds=("0.5", "+Inf")), version=1)
    rig.set(FRAUD, _buckets(40, 160, bounds=("0.5", "+Inf")), version=2)  # very different
    rig.set(LABEL, {"legit": 180.0, "fraud": 20.0}, version=1)
    rig.set(LABEL, {"legit": 170.0, "fraud": 30.0}, version=2)
    rig.sample_at(5.0)
    assert rig.scores() == {}  # no profile: windows are kept for distance() but nothing is scored
    assert rig.monitor.distance("m", 1, 2, min_samples=100) == (
        pytest.approx(psi([160, 40], [40, 160])),
        "scores[fraud]",
    )
    # The other way round: the same series, and PSI is symmetric.
    value, label = rig.monitor.distance("m", 2, 1, min_samples=100) or (0.0, "")
    assert label == "scores[fraud]"
    assert value == pytest.approx(psi([40, 160], [160, 40]))


def test_the_drift_min_samples_is_a_floor_for_the_distance() -> None:
    rig = Rig(profile=None)  # drift min_samples = 100
    rig.set(LABEL, {"a": 0.0}, version=1)
    rig.set(LABEL, {"a": 0.0}, version=2)
    rig.sample_at(0.0)
    rig.set(LABEL, {"a": 99.0}, version=1)
    rig.set(LABEL, {"b": 99.0}, version=2)
    rig.sample_at(5.0)
    assert rig.monitor.distance("m", 1, 2, min_samples=1) is None


def test_distance_needs_min_samples_on_both_sides() -> None:
    rig = Rig(profile=None, config=DriftConfig(min_samples=10, interval_s=5.0))
    rig.set(LABEL, {"a": 0.0}, version=1)
    rig.set(LABEL, {"a": 0.0}, version=2)
    rig.sample_at(0.0)
    rig.set(LABEL, {"a": 100.0, "b": 100.0}, version=1)
    rig.set(LABEL, {"a": 99.0}, version=2)
    rig.sample_at(5.0)
    assert rig.monitor.distance("m", 1, 2, min_samples=100) is None
    value, label = rig.monitor.distance("m", 1, 2, min_samples=99) or (0.0, "")
    assert label == "label"
    assert value == pytest.approx(psi([100, 100], [99, 0]))  # classes aligned over a, b
    assert rig.monitor.distance("m", 1, 3, min_samples=1) is None  # no such canary
    assert rig.monitor.distance("other", 1, 2, min_samples=1) is None


def test_distance_skips_series_whose_buckets_differ() -> None:
    rig = Rig(profile=None)
    rig.set(SCORES, _buckets(0, 0, 0, 0), version=1)
    rig.set(SCORES, _buckets(0, 0, bounds=("0.5", "+Inf")), version=2)
    rig.sample_at(0.0)
    rig.set(SCORES, _buckets(50, 50, 50, 50), version=1)
    rig.set(SCORES, _buckets(100, 100, bounds=("0.5", "+Inf")), version=2)
    rig.sample_at(5.0)
    assert rig.monitor.distance("m", 1, 2, min_samples=1) is None
