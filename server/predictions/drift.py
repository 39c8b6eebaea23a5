"""Distances between a reference distribution and live counts (pure).

PSI (population stability index) = sum over buckets of (live - ref) * ln(live / ref). Established reading:
< 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant shift. Jensen-Shannon distance (base 2) is the
square root of the JS divergence: symmetric, bounded to [0, 1], defined when a bucket is empty on one side.
Empty buckets are smoothed (floored at EPSILON, then renormalised) so one empty bucket cannot make PSI infinite.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: Smallest proportion a bucket is given, the usual PSI smoothing floor.
EPSILON = 1e-4
#: The conventional PSI thresholds.
PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25


def smoothed(weights: Sequence[float]) -> list[float]:
    """Proportions from counts or proportions, every bucket floored at EPSILON, summing to 1."""
    total = float(sum(weights))
    if total <= 0:
        return [1.0 / len(weights)] * len(weights) if weights else []
    floored = [max(w / total, EPSILON) for w in weights]
    norm = sum(floored)
    return [p / norm for p in floored]


def psi(reference: Sequence[float], live: Sequence[float]) -> float:
    """PSI of `live` (counts or proportions) against `reference`, over the same buckets."""
    if len(reference) != len(live):
        raise ValueError(f"bucket counts differ: reference {len(reference)}, live {len(live)}")
    expected, actual = smoothed(reference), smoothed(live)
    return sum((a - e) * math.log(a / e) for e, a in zip(expected, actual, strict=True))


def js_distance(reference: Sequence[float], live: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between two distributions over the same buckets."""
    if len(reference) != len(live):
        raise ValueError(f"bucket counts differ: reference {len(reference)}, live {len(live)}")
    p, q = smoothed(reference), smoothed(live)
    divergence = 0.0
    for a, b in zip(p, q, strict=True):
        m = (a + b) / 2
        divergence += 0.5 * a * math.log2(a / m) + 0.5 * b * math.log2(b / m)
    return math.sqrt(max(divergence, 0.0))


def aligned(reference: Mapping[str, float], live: Mapping[str, float]) -> tuple[list[float], list[float]]:
    """Two class distributions as lists over the union of their labels, in label order."""
    labels = sorted(set(reference) | set(live))
    return [reference.get(label, 0.0) for label in labels], [live.get(label, 0.0) for label in labels]


METHODS = {"psi": psi, "js": js_distance}
