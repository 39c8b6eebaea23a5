"""Drift of live predictions against each version's reference profile, and between two versions.

The monitor reads the cumulative prediction counters as a scrape would (under --workers: merged over
every worker, so there is one value per version per server), keeps a sliding window per version and
watched series, and every interval scores each window against the reference with PSI and the
Jensen-Shannon distance. Windows with fewer than `min_samples` predictions give no score at all.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from server.predictions.config import DriftConfig
from server.predictions.drift import METHODS, aligned, psi
from server.predictions.profile import Distribution, ReferenceProfile
from server.predictions.window import SlidingWindow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, order=True)
class Series:
    """One watched distribution of a version: a score histogram, a predicted-class count, a feature histogram."""

    kind: str
    """"histogram" (output score, or one class's score), "classes" (predicted classes) or "feature"."""
    name: str
    """The output or input tensor."""
    part: str = ""
    """The class of a per-class histogram, or the feature of an input; "" otherwise."""

    @property
    def label(self) -> str:
        """How the drift gauge's `output` label names it: `scores`, `scores[fraud]`, `features[amount]`."""
        return f"{self.name}[{self.part}]" if self.part else self.name


LiveCounts = Mapping[tuple[str, int, Series], Mapping[str, float]]
"""(model, version, series) -> cumulative count per bucket upper bound (as text, "+Inf") or class label."""


@dataclass(frozen=True, slots=True)
class VersionReference:
    config: DriftConfig
    profile: ReferenceProfile | None


@dataclass(frozen=True, slots=True)
class DriftScore:
    model: str
    version: int
    series: Series
    method: str
    value: float
    samples: int


def reference_of(profile: ReferenceProfile, series: Series) -> Distribution | Mapping[str, float] | None:
    if series.kind == "histogram":
        return profile.histograms.get((series.name, series.part))
    if series.kind == "classes":
        return profile.classes.get(series.name)
    return profile.features.get((series.name, series.part))


def _bucket_vector(edges: tuple[float, ...], live: Mapping[str, float]) -> list[float] | None:
    """Live per-bucket counts in the order of `edges` (+Inf last); None when the buckets are not the same."""
    by_bound = {math.inf if key == "+Inf" else float(key): value for key, value in live.items()}
    bounds = sorted(by_bound)
    if len(bounds) != len(edges) + 1 or bounds[-1] != math.inf:
        return None
    if not all(math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12) for a, b in zip(bounds, edges, strict=False)):
        return None
    return [by_bound[bound] for bound in bounds]


def compare(
    reference: Distribution | Mapping[str, float], live: Mapping[str, float]
) -> tuple[list[float], list[float]]:
    """Reference and live weights over the same buckets or classes; ValueError when they do not line up."""
    if isinstance(reference, Distribution):
        vector = _bucket_vector(reference.edges, live)
        if vector is None:
            raise ValueError("live buckets differ from the reference profile's")
        return list(reference.proportions), vector
    return aligned(reference, live)


class DriftMonitor:
    def __init__(
        self,
        *,
        live: Callable[[], LiveCounts],
        references: Callable[[str, int], VersionReference | None],
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 1.0,
    ) -> None:
        """`live`: the cumulative counters now; `references`: a version's drift config and profile."""
        self._live = live
        self._references = references
        self._clock = clock
        self._tick_s = tick_s
        self._windows: dict[tuple[str, int, Series], SlidingWindow] = {}
        self._due: dict[tuple[str, int], float] = {}
        self._scores: dict[tuple[str, int, Series, str], DriftScore] = {}
        self._mismatch_logged: set[tuple[str, int, Series]] = set()

    async def run(self) -> None:
        """Sample whenever a version is due, forever. Reading the counters means collecting the whole registry
        (under --workers: every worker's files), so it happens only when some version's interval is up."""
        while True:
            try:
                self.sample()
            except Exception:
                log.exception("drift monitor pass failed")
            await asyncio.sleep(self._wait_s())

    def _wait_s(self) -> float:
        """Until the next version is due; while none is known, `tick_s` (a new version is noticed that soon)."""
        if not self._due:
            return self._tick_s
        return max(min(self._due.values()) - self._clock(), self._tick_s / 10)

    def scores(self) -> list[DriftScore]:
        """The latest score of every version and series with enough samples."""
        return list(self._scores.values())

    def sample(self) -> None:
        """Read the counters, advance the windows that are due, rescore them."""
        now = self._clock()
        live = self._live()
        seen: set[tuple[str, int]] = set()
        references: dict[tuple[str, int], VersionReference] = {}
        for (model, version, series), counts in live.items():
            key = (model, version)
            seen.add(key)
            if now < self._due.get(key, -math.inf):
                continue  # not due: neither its windows nor its reference are touched
            reference = references.get(key)
            if reference is None:
                reference = self._references(model, version) or VersionReference(DriftConfig(), None)
                references[key] = reference
            window = self._windows.get((model, version, series))
            config = reference.config
            if window is None or window.window_s != config.window_s or window.window_samples != config.window_samples:
                window = self._windows[(model, version, series)] = SlidingWindow(config.window_s, config.window_samples)
                # Counters start at zero when a version loads: what they hold at first sight is recent traffic.
                window.add(now, {})
            window.add(now, counts)
            self._score(model, version, series, window, reference)
        for key, reference in references.items():  # the versions sampled now
            self._due[key] = now + reference.config.interval_s
        self._forget_gone(seen)

    def _score(
        self, model: str, version: int, series: Series, window: SlidingWindow, reference: VersionReference
    ) -> None:
        for method in METHODS:
            self._scores.pop((model, version, series, method), None)
        if reference.profile is None:
            return
        expected = reference_of(reference.profile, series)
        if expected is None:
            return
        counts = window.counts()
        samples = int(sum(counts.values()))
        if samples < reference.config.min_samples:
            return  # too few predictions: no score rather than noise
        try:
            expected_weights, live_weights = compare(expected, counts)
        except ValueError as error:
            if (model, version, series) not in self._mismatch_logged:
                self._mismatch_logged.add((model, version, series))
                log.warning(
                    "drift not scored",
                    extra={"model": model, "version": version, "output": series.label, "error": str(error)},
                )
            return
        for method, distance in METHODS.items():
            value = distance(expected_weights, live_weights)
            self._scores[(model, version, series, method)] = DriftScore(model, version, series, method, value, samples)

    def _forget_gone(self, seen: set[tuple[str, int]]) -> None:
        for key in [key for key in self._windows if (key[0], key[1]) not in seen]:
            del self._windows[key]
        for score_key in [key for key in self._scores if (key[0], key[1]) not in seen]:
            del self._scores[score_key]
        for due_key in [key for key in self._due if key not in seen]:
            del self._due[due_key]
        self._mismatch_logged = {key for key in self._mismatch_logged if (key[0], key[1]) in seen}

    def distance(self, model: str, stable: int, canary: int, min_samples: int) -> tuple[float, str] | None:
        """The largest PSI of the canary's window against the stable's, over their common series, and which
        series; None until both have `min_samples` predictions in some common series."""
        worst: tuple[float, str] | None = None  # (psi, series label)
        # PSI between two small samples is inflated by noise (about buckets x 2 / samples): never fewer than the
        # model's drift min_samples, so that two versions predicting alike do not read as different.
        reference = self._references(model, canary)
        min_samples = max(min_samples, (reference.config if reference is not None else DriftConfig()).min_samples)
        for (name, version, series), window in self._windows.items():
            if name != model or version != canary:
                continue
            other = self._windows.get((model, stable, series))
            if other is None:
                continue
            canary_counts, stable_counts = window.counts(), other.counts()
            if sum(canary_counts.values()) < min_samples or sum(stable_counts.values()) < min_samples:
                continue
            value = _psi_between(stable_counts, canary_counts, series)
            if value is not None and (worst is None or value > worst[0]):
                worst = (value, series.label)
        return worst


def _psi_between(stable: Mapping[str, float], canary: Mapping[str, float], series: Series) -> float | None:
    if series.kind == "classes":
        expected, actual = aligned(stable, canary)
        return psi(expected, actual)
    if set(stable) != set(canary):
        return None  # different buckets: not comparable
    keys = sorted(stable, key=lambda key: math.inf if key == "+Inf" else float(key))
    return psi([stable[k] for k in keys], [canary[k] for k in keys])
