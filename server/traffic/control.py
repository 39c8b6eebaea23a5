"""The run-time routing state of every model, layered over each model's [routing] config.

`policy` is the repository's routing policy: the table a (re)load publishes is the config's,
with the state's override and rollbacks applied. Changes go through `apply`, which persists
them; the caller then republishes the model's record (`ModelRepository.reroute`).
Under --workers, only the supervisor's control owns the file (`owner`): it records each change
first, then every worker applies the same change to its own copy (read from the file at start).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection

from server.errors import ModelLoadError
from server.routing.changes import ModelRoutingState, RoutingChange, apply_change, effective_weights, fingerprint
from server.routing.config import RoutingConfig
from server.routing.table import RoutingTable, default_table
from server.traffic.state_store import RoutingStateStore

log = logging.getLogger(__name__)


class RoutingControl:
    def __init__(
        self,
        store: RoutingStateStore,
        *,
        owner: bool = True,
        on_change: Callable[[RoutingChange], None] | None = None,
    ) -> None:
        """`on_change` hears every change the owner records (once per change, whatever the process count)."""
        self._store = store
        self._owner = owner
        self._on_change = on_change
        self._states = store.load()

    def current_state(self, model: str, config: RoutingConfig) -> ModelRoutingState | None:
        """The model's state if it was made for `config`, else None (stale state does not apply)."""
        state = self._states.get(model)
        return state if state is not None and state.fingerprint == fingerprint(config) else None

    def apply(self, change: RoutingChange) -> ModelRoutingState:
        """Apply and persist one change; returns the model's new state."""
        state = apply_change(self._states.get(change.model), change)
        self._states[change.model] = state
        if self._owner:
            self._store.save(self._states)
            if self._on_change is not None:
                self._on_change(change)
        return state

    def forget_stale(self, model: str, current: str) -> None:
        """Drop state made for another config than `current` (the owner, once that config serves)."""
        state = self._states.get(model)
        if self._owner and state is not None and state.fingerprint != current:
            del self._states[model]
            self._store.save(self._states)
            log.info("routing state cleared: the model's [routing] config changed", extra={"model": model})

    def policy(self, config: RoutingConfig, model: str, ready: Collection[int]) -> RoutingTable:
        """The RoutingPolicy of the repository: the config's table with the run-time state applied."""
        versions = set(ready)
        table = default_table(config, model, versions)  # validates the config itself; raises on bad routing
        if config.shadow is not None and config.shadow.version not in versions:
            log.warning(
                "shadow version did not load; the model serves without shadow traffic",
                extra={"model": model, "version": config.shadow.version},
            )
        self.forget_stale(model, fingerprint(config))  # this config serves from now on
        state = self.current_state(model, config)
        if not config.weights or state is None:
            return table
        weights = effective_weights(config.weights, state)
        if not any(weight > 0 for version, weight in weights.items() if version in versions):
            log.warning("routing state leaves no version with weight; using the config", extra={"model": model})
            return table
        try:
            return default_table(config.model_copy(update={"weights": weights}), model, versions)
        except ModelLoadError as error:  # an override naming a version that no longer loads
            log.warning(
                "routing override no longer fits; using the config", extra={"model": model, "error": str(error)}
            )
            return table
