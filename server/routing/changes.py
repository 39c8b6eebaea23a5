"""Run-time routing state of a model and the changes that move it (pure data and functions).

The state layers over the model's [routing] config: a weight override (set by an operator or by
promotion), rolled-back versions (held at weight 0) and whether the judge is paused. It belongs
to one config: `fingerprint` names the [routing] section it was made for, and state made for
another config is ignored and dropped, so editing the routing clears a rollback while a restart or
a reload of the same config keeps it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from server.routing.config import RoutingConfig


def fingerprint(config: RoutingConfig) -> str:
    """A short, stable name for one [routing] section."""
    return hashlib.sha256(config.model_dump_json().encode()).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class Rollback:
    reason: str
    at: str
    """UTC time, ISO 8601."""
    evidence: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ModelRoutingState:
    fingerprint: str
    weights: dict[int, int] | None = None
    """Replaces the config's weights when set."""
    rolled_back: dict[int, Rollback] = field(default_factory=dict)
    judge_paused: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "weights": None if self.weights is None else {str(v): w for v, w in self.weights.items()},
            "rolled_back": {
                str(v): {"reason": r.reason, "at": r.at, "evidence": r.evidence} for v, r in self.rolled_back.items()
            },
            "judge_paused": self.judge_paused,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelRoutingState:
        weights = raw.get("weights")
        return cls(
            fingerprint=str(raw["fingerprint"]),
            weights=None if weights is None else {int(v): int(w) for v, w in weights.items()},
            rolled_back={
                int(v): Rollback(
                    str(r["reason"]), str(r["at"]), {k: float(x) for k, x in r.get("evidence", {}).items()}
                )
                for v, r in raw.get("rolled_back", {}).items()
            },
            judge_paused=bool(raw.get("judge_paused", False)),
        )


class ChangeKind(StrEnum):
    SET_WEIGHTS = "set_weights"
    ROLLBACK = "rollback"
    PROMOTE = "promote"
    RESET = "reset"
    """Back to the config: drop overrides and rollbacks."""
    PAUSE_JUDGE = "pause_judge"
    RESUME_JUDGE = "resume_judge"


@dataclass(frozen=True, slots=True)
class RoutingChange:
    """One change to a model's routing, as data: it crosses process boundaries under --workers."""

    kind: ChangeKind
    model: str
    fingerprint: str
    """The [routing] config the change was made against."""
    version: int = 0
    weights: dict[int, int] = field(default_factory=dict)
    reason: str = ""
    at: str = ""
    evidence: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "model": self.model,
            "fingerprint": self.fingerprint,
            "version": self.version,
            "weights": {str(v): w for v, w in self.weights.items()},
            "reason": self.reason,
            "at": self.at,
            "evidence": self.evidence,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> RoutingChange:
        return cls(
            kind=ChangeKind(raw["kind"]),
            model=str(raw["model"]),
            fingerprint=str(raw["fingerprint"]),
            version=int(raw.get("version", 0)),
            weights={int(v): int(w) for v, w in raw.get("weights", {}).items()},
            reason=str(raw.get("reason", "")),
            at=str(raw.get("at", "")),
            evidence={k: float(x) for k, x in raw.get("evidence", {}).items()},
        )


def apply_change(state: ModelRoutingState | None, change: RoutingChange) -> ModelRoutingState:
    """The state after `change`; state made for another config is discarded first."""
    if state is None or state.fingerprint != change.fingerprint:
        state = ModelRoutingState(change.fingerprint)
    kind = change.kind
    if kind is ChangeKind.SET_WEIGHTS:
        # Weights set by hand are the operator's decision: a version given weight again is no longer rolled back.
        kept = {v: r for v, r in state.rolled_back.items() if change.weights.get(v, 0) <= 0}
        return replace(state, weights=dict(change.weights), rolled_back=kept)
    if kind is ChangeKind.ROLLBACK:
        rollback = Rollback(change.reason, change.at, dict(change.evidence))
        return replace(state, rolled_back={**state.rolled_back, change.version: rollback})
    if kind is ChangeKind.PROMOTE:
        kept = {v: r for v, r in state.rolled_back.items() if v != change.version}
        return replace(state, weights=dict(change.weights), rolled_back=kept)
    if kind is ChangeKind.RESET:
        return ModelRoutingState(change.fingerprint, judge_paused=state.judge_paused)
    return replace(state, judge_paused=kind is ChangeKind.PAUSE_JUDGE)


def effective_weights(config_weights: dict[int, int], state: ModelRoutingState | None) -> dict[int, int]:
    """The weights that route: the override (or the config's), with rolled-back versions at 0."""
    weights = dict(config_weights if state is None or state.weights is None else state.weights)
    if state is not None:
        for version in state.rolled_back:
            if version in weights:
                weights[version] = 0
    return weights
