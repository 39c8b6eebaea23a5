"""The judge's and the drift monitor's data as JSON on the supervisor <-> worker pipe: what a worker reports, what
the supervisor answers."""

from __future__ import annotations

from typing import Any

from server.predictions.monitor import DriftScore, Series
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


def drift_score_to_json(score: DriftScore) -> dict[str, Any]:
    series = score.series
    return {
        "model": score.model,
        "version": score.version,
        "series": {"kind": series.kind, "name": series.name, "part": series.part},
        "method": score.method,
        "value": score.value,
        "samples": score.samples,
    }


def drift_score_from_json(raw: dict[str, Any]) -> DriftScore:
    series = raw["series"]
    return DriftScore(
        model=str(raw["model"]),
        version=int(raw["version"]),
        series=Series(str(series["kind"]), str(series["name"]), str(series["part"])),
        method=str(raw["method"]),
        value=float(raw["value"]),
        samples=int(raw["samples"]),
    )
