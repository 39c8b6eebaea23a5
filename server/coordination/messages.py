"""The judge's data as JSON on the supervisor <-> worker pipe: what a worker reports, what the supervisor answers."""

from __future__ import annotations

from typing import Any

from server.routing.config import JudgeConfig
from server.routing.judge import Outcome, Verdict
from server.traffic.judge import CanaryStatus, JudgeTarget


def target_to_json(target: JudgeTarget) -> dict[str, Any]:
    return {
        "model": target.model,
        "fingerprint": target.fingerprint,
        "weights": {str(v): w for v, w in target.weights.items()},
        "stable": target.stable,
        "canaries": list(target.canaries),
        "config": target.config.model_dump(mode="json"),
        "paused": target.paused,
    }


def status_to_json(status: CanaryStatus) -> dict[str, Any]:
    verdict = status.verdict
    return {
        "outcome": verdict.outcome.value,
        "reasons": list(verdict.reasons),
        "evidence": verdict.evidence,
        "failed_checks": status.failed_checks,
        "checked_at": status.checked_at,
    }


def status_from_json(raw: dict[str, Any]) -> CanaryStatus:
    verdict = Verdict(Outcome(raw["outcome"]), tuple(raw["reasons"]), {k: float(v) for k, v in raw["evidence"].items()})
    return CanaryStatus(verdict, int(raw["failed_checks"]), str(raw["checked_at"]))


def target_from_json(raw: dict[str, Any]) -> JudgeTarget:
    return JudgeTarget(
        model=str(raw["model"]),
        fingerprint=str(raw["fingerprint"]),
        weights={int(v): int(w) for v, w in raw["weights"].items()},
        stable=None if raw["stable"] is None else int(raw["stable"]),
        canaries=tuple(int(v) for v in raw["canaries"]),
        config=JudgeConfig.model_validate(raw["config"]),
        paused=bool(raw["paused"]),
    )
