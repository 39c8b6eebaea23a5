"""server.predictions.window: counts in the last window_s seconds from cumulative snapshots."""

from __future__ import annotations

from server.predictions.window import SlidingWindow


def test_no_counts_before_two_snapshots() -> None:
    window = SlidingWindow(60.0)
    assert window.counts() == {}
    window.add(0.0, {"a": 5.0})
    assert window.counts() == {}


def test_counts_are_the_latest_minus_the_base() -> None:
    window = SlidingWindow(60.0)
    window.add(0.0, {"a": 5.0, "b": 1.0})
    window.add(10.0, {"a": 9.0, "b": 1.0, "c": 2.0})  # "c" is new: counted from zero
    assert window.counts() == {"a": 4.0, "b": 0.0, "c": 2.0}


def test_the_base_is_the_newest_snapshot_at_or_before_the_window_start() -> None:
    window = SlidingWindow(10.0)
    for at, count in [(0.0, 0.0), (5.0, 5.0), (10.0, 10.0)]:
        window.add(at, {"a": count})
    assert window.counts() == {"a": 10.0}  # start 0: base at 0
    window.add(15.0, {"a": 20.0})
    assert window.counts() == {"a": 15.0}  # start 5: base at 5
    window.add(24.0, {"a": 30.0})
    assert window.counts() == {"a": 20.0}  # start 14: base at 10 (the newest at or before 14)
    window.add(100.0, {"a": 31.0})
    assert window.counts() == {"a": 1.0}  # a long gap: the previous snapshot is the base


def test_window_samples_caps_the_window_at_the_latest_predictions() -> None:
    window = SlidingWindow(300.0, window_samples=50)
    window.add(0.0, {"a": 0.0})
    window.add(1.0, {"a": 60.0, "b": 40.0})
    window.add(2.0, {"a": 80.0, "b": 50.0})
    # From t=0 the window would hold 130 > 50; from t=1 it holds 30 <= 50.
    assert window.counts() == {"a": 20.0, "b": 10.0}


def test_window_samples_keeps_the_oldest_base_within_the_cap() -> None:
    window = SlidingWindow(300.0, window_samples=25)
    for at, count in [(0.0, 0.0), (1.0, 10.0), (2.0, 20.0), (3.0, 30.0)]:
        window.add(at, {"a": count})
    assert window.counts() == {"a": 20.0}  # base t=1: 20 <= 25, while base t=0 would hold 30


def test_window_samples_smaller_than_one_interval_keeps_the_last_interval() -> None:
    window = SlidingWindow(300.0, window_samples=5)
    window.add(0.0, {"a": 0.0})
    window.add(1.0, {"a": 100.0})
    window.add(2.0, {"a": 110.0})
    assert window.counts() == {"a": 10.0}


def test_a_counter_going_down_starts_the_window_afresh() -> None:
    window = SlidingWindow(300.0)
    window.add(0.0, {"a": 10.0})
    window.add(1.0, {"a": 20.0})
    window.add(2.0, {"a": 5.0})  # a restarted process
    assert window.counts() == {}
    window.add(3.0, {"a": 8.0})
    assert window.counts() == {"a": 3.0}


def test_a_label_disappearing_counts_as_going_down() -> None:
    window = SlidingWindow(300.0)
    window.add(0.0, {"a": 10.0, "b": 4.0})
    window.add(1.0, {"a": 12.0})
    assert window.counts() == {}
    window.add(2.0, {"a": 15.0})
    assert window.counts() == {"a": 3.0}


def test_a_counter_staying_the_same_is_not_a_reset() -> None:
    window = SlidingWindow(300.0)
    window.add(0.0, {"a": 10.0})
    window.add(1.0, {"a": 10.0})
    window.add(2.0, {"a": 11.0})
    assert window.counts() == {"a": 1.0}
