"""Comparing a shadow version's outputs with the primary's for one request (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class Comparison:
    agree: bool
    """Every output agrees: equal labels/classes, equal argmax of class scores, scores within tolerance."""
    max_abs_diff: float | None
    """Largest |primary - shadow| over the floating-point outputs; None when there are none to compare."""


def compare(
    primary: Mapping[str, npt.NDArray[Any]], shadow: Mapping[str, npt.NDArray[Any]], tolerance: float
) -> Comparison:
    """How the shadow's outputs for one request differ from the primary's.

    Per output present in both: non-float outputs (labels, ids, strings) must be equal; float
    outputs with a last dimension over 1 are class scores and must have the same argmax; other
    float outputs are scores and must lie within `tolerance`. A shape mismatch disagrees.
    """
    agree = True
    worst: float | None = None
    for name, ours in primary.items():
        theirs = shadow.get(name)
        if theirs is None or theirs.shape != ours.shape:
            agree = False
            continue
        if ours.dtype.kind != "f" or theirs.dtype.kind != "f":
            agree = agree and bool(np.array_equal(ours, theirs))
            continue
        if ours.size == 0:
            continue
        delta = float(np.max(np.abs(ours.astype(np.float64) - theirs.astype(np.float64))))
        if np.isnan(delta):  # NaN on either side: no agreement, and no finite difference to record
            agree = False
            continue
        worst = delta if worst is None else max(worst, delta)
        if ours.ndim >= 2 and ours.shape[-1] > 1:
            agree = agree and bool(np.array_equal(np.argmax(ours, axis=-1), np.argmax(theirs, axis=-1)))
        else:
            agree = agree and delta <= tolerance
    return Comparison(agree, worst)
