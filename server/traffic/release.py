"""Release operations on a model's routing: set weights, promote, roll back, reset, pause the judge.

Each operation is validated against the versions serving now and becomes a `RoutingChange`
(data). `apply` makes a change take effect in this process: the control records (and, as owner,
persists) it, and the repository republishes the model's record with the new table. Under
--workers the change goes to the supervisor first, which has every worker apply it.
"""

from __future__ import annotations

from datetime import UTC, datetime

from server.errors import ConflictError, InvalidInputError, ModelNotReadyError
from server.repository.manager import ModelRepository
from server.repository.records import ModelRecord
from server.routing.changes import ChangeKind, RoutingChange, fingerprint
from server.routing.config import RoutingConfig
from server.traffic.control import RoutingControl
from server.traffic.judge import JudgeTarget


class ReleaseManager:
    def __init__(self, repository: ModelRepository, control: RoutingControl) -> None:
        self._repository = repository
        self._control = control

    @property
    def control(self) -> RoutingControl:
        return self._control

    async def apply(self, change: RoutingChange) -> None:
        """Make `change` take effect here; ConflictError if the model's [routing] changed since it was made."""
        record = self._repository.record(change.model)
        if record.config is None or fingerprint(record.config.routing) != change.fingerprint:
            # A reload raced the change: the new config's routing stands, and the caller hears why.
            raise ConflictError(
                f"the [routing] config of model '{change.model}' changed (a reload) while this change was made; "
                "look at the routing again and repeat the change if it still applies"
            )
        self._control.apply(change)
        await self._repository.reroute(change.model)

    def judge_targets(self) -> list[JudgeTarget]:
        """Every loaded model with the judge enabled, as the judge sees it."""
        targets = []
        for record in self._repository.records():
            config = record.config
            table = record.routing
            if config is None or table is None or not record.loaded or not config.routing.judge.enabled:
                continue
            state = self._control.current_state(record.name, config.routing)
            targets.append(
                JudgeTarget(
                    model=record.name,
                    fingerprint=fingerprint(config.routing),
                    weights=dict(table.weights),
                    stable=table.stable,
                    canaries=tuple(table.canaries()),
                    config=config.routing.judge,
                    paused=state is not None and state.judge_paused,
                )
            )
        return targets

    # ------------------------------------------------------------ operator changes, validated

    def set_weights(self, model: str, weights: dict[int, int]) -> RoutingChange:
        record, routing = self._routed(model)
        unknown = sorted(v for v in weights if v not in record.loaded)
        if unknown:
            raise InvalidInputError(
                f"version(s) {', '.join(map(str, unknown))} of model '{model}' are not loaded; "
                f"loaded: {', '.join(map(str, sorted(record.loaded)))}"
            )
        if any(weight < 0 for weight in weights.values()):
            raise InvalidInputError("weights must not be negative")
        if not any(weights.values()):
            raise InvalidInputError("at least one version needs a positive weight")
        shadow = routing.shadow
        if shadow is not None and weights.get(shadow.version, 0) > 0:
            raise InvalidInputError(f"version {shadow.version} is the shadow version of model '{model}'")
        full = {version: weights.get(version, 0) for version in sorted(record.loaded)}
        return RoutingChange(ChangeKind.SET_WEIGHTS, model, fingerprint(routing), weights=full)

    def promote(self, model: str, version: int) -> RoutingChange:
        """All traffic to `version` (its rollback, if any, is lifted)."""
        record, routing = self._routed(model)
        self._require_loaded(record, version)
        shadow = routing.shadow
        if shadow is not None and shadow.version == version:
            raise InvalidInputError(f"version {version} is the shadow version of model '{model}'")
        weights = {v: 100 if v == version else 0 for v in sorted(record.loaded)}
        return RoutingChange(ChangeKind.PROMOTE, model, fingerprint(routing), version=version, weights=weights)

    def rollback(self, model: str, version: int, reason: str = "manual") -> RoutingChange:
        """Take `version` out of routing, persistently (until the config changes or it is promoted)."""
        record, routing = self._routed(model)
        self._require_loaded(record, version)
        table = record.routing
        assert table is not None
        others = [v for v, w in table.weights.items() if w > 0 and v != version and v in record.loaded]
        if table.weights.get(version, 0) <= 0:
            raise InvalidInputError(f"version {version} of model '{model}' carries no weight; nothing to roll back")
        if not others:
            raise InvalidInputError(
                f"version {version} is the only version of model '{model}' with weight; promote another one instead"
            )
        at = datetime.now(UTC).isoformat(timespec="seconds")
        return RoutingChange(ChangeKind.ROLLBACK, model, fingerprint(routing), version=version, reason=reason, at=at)

    def reset(self, model: str) -> RoutingChange:
        _, routing = self._routed(model)
        return RoutingChange(ChangeKind.RESET, model, fingerprint(routing))

    def pause_judge(self, model: str, paused: bool) -> RoutingChange:
        _, routing = self._routed(model)
        kind = ChangeKind.PAUSE_JUDGE if paused else ChangeKind.RESUME_JUDGE
        return RoutingChange(kind, model, fingerprint(routing))

    def _routed(self, model: str) -> tuple[ModelRecord, RoutingConfig]:
        record = self._repository.record(model)
        if record.config is None or not record.loaded:
            raise ModelNotReadyError(f"model '{model}' has no ready version")
        if not record.config.routing.weights:
            raise InvalidInputError(
                f"model '{model}' has no [routing] section; add `weights` to its config.toml and load it again"
            )
        return record, record.config.routing

    @staticmethod
    def _require_loaded(record: ModelRecord, version: int) -> None:
        if version not in record.loaded:
            loaded = ", ".join(map(str, sorted(record.loaded)))
            raise InvalidInputError(f"version {version} of model '{record.name}' is not loaded; loaded: {loaded}")
