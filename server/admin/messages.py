"""Protobuf views of a model's routing and prediction drift for the admin API."""

from __future__ import annotations

from oip.v1 import routing_admin_pb2 as admin_pb
from server.predictions.monitor import DriftScore
from server.repository.records import ModelRecord
from server.routing.changes import ModelRoutingState
from server.traffic.judge import CanaryStatus


def _role(version: int, weight: int, stable: int | None, shadow: int | None) -> str:
    if version == stable:
        return "stable"
    if weight > 0:
        return "canary"
    if version == shadow:
        return "shadow"
    return "idle"


def routing_state(
    record: ModelRecord, state: ModelRoutingState | None, verdicts: dict[int, CanaryStatus]
) -> admin_pb.RoutingState:
    """The RoutingState message of one model: config, effective weights, rollbacks and verdicts."""
    config = record.config
    routing = None if config is None else config.routing
    table = record.routing
    shadow = None if routing is None or routing.shadow is None else routing.shadow
    message = admin_pb.RoutingState(
        model=record.name,
        sticky_key="" if routing is None else routing.sticky_key,
        shadow_version=0 if shadow is None else shadow.version,
        shadow_fraction=0.0 if shadow is None else shadow.fraction,
        judge_enabled=routing is not None and routing.judge.enabled,
        judge_paused=state is not None and state.judge_paused,
        overridden=state is not None and state.weights is not None,
    )
    stable = None if table is None else table.stable
    configured = {} if routing is None else routing.weights
    for version in sorted(set(record.status) | set(record.loaded)):
        weight = 0 if table is None else table.weights.get(version, 0)
        entry = message.versions.add(
            version=version,
            ready=version in record.loaded,
            configured_weight=configured.get(version, 0),
            effective_weight=weight,
            role=_role(version, weight, stable, None if shadow is None else shadow.version),
        )
        rollback = None if state is None else state.rolled_back.get(version)
        if rollback is not None:
            entry.rolled_back = True
            entry.rollback_reason = rollback.reason
            entry.rolled_back_at = rollback.at
            entry.rollback_evidence.update(rollback.evidence)
        status = verdicts.get(version)
        # A verdict describes a canary: once promoted to stable (or made idle by hand) it is history.
        if status is not None and (entry.role == "canary" or entry.rolled_back):
            entry.verdict = status.verdict.outcome.value
            entry.failed_checks = status.failed_checks
            entry.verdict_evidence.update(status.verdict.evidence)
            entry.checked_at = status.checked_at
    return message


def drift_report(record: ModelRecord, scores: list[DriftScore]) -> admin_pb.DriftReport:
    """The DriftReport of one model: its versions' latest scores, and which loaded versions can be scored at all."""
    message = admin_pb.DriftReport(model=record.name)
    for score in sorted(scores, key=lambda s: (s.version, s.series, s.method)):
        message.scores.add(
            version=score.version,
            output=score.series.label,
            method=score.method,
            value=score.value,
            window_samples=score.samples,
        )
    for version, loaded in sorted(record.loaded.items()):
        message.versions.add(
            version=version,
            has_reference=loaded.reference is not None,
            min_samples=loaded.config.telemetry.drift.min_samples,
        )
    return message
