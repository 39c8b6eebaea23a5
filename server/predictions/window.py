"""A sliding window over cumulative counters (pure): what was counted in the last `window_s` seconds.

Counters only grow, so the window's counts are the latest snapshot minus an older one. Snapshots are
kept for `window_s`; with `window_samples`, the base moves forward until the window holds at most that
many observations. A counter that went down (a restarted process, a reloaded version) starts the window
afresh, since the difference would be meaningless.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float
    counts: Mapping[str, float]
    total: float


class SlidingWindow:
    def __init__(self, window_s: float, window_samples: int = 0) -> None:
        self.window_s = window_s
        self.window_samples = window_samples
        self._snapshots: deque[Snapshot] = deque()

    def add(self, at: float, cumulative: Mapping[str, float]) -> None:
        """The counters' cumulative values at time `at` (bucket or class label -> count)."""
        snapshot = Snapshot(at, dict(cumulative), float(sum(cumulative.values())))
        if self._snapshots and _went_down(self._snapshots[-1].counts, snapshot.counts):
            self._snapshots.clear()
        self._snapshots.append(snapshot)
        # Keep the newest snapshot at or before the window's start as the base: the window spans window_s.
        start = at - self.window_s
        while len(self._snapshots) > 1 and self._snapshots[1].at <= start:
            self._snapshots.popleft()

    def counts(self) -> dict[str, float]:
        """Counts inside the window (label -> count); empty before two snapshots."""
        if len(self._snapshots) < 2:
            return {}
        latest = self._snapshots[-1]
        base = self._snapshots[0]
        if self.window_samples:
            # The oldest base that keeps the window within window_samples; at least the last interval.
            older = list(self._snapshots)[:-1]
            base = next((s for s in older if latest.total - s.total <= self.window_samples), older[-1])
        return {label: value - base.counts.get(label, 0.0) for label, value in latest.counts.items()}


def _went_down(before: Mapping[str, float], after: Mapping[str, float]) -> bool:
    return any(after.get(label, 0.0) < value for label, value in before.items())
