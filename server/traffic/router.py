"""The one place where "which version serves this request" is decided.

An explicit `model_version` always wins (pinned). Otherwise the model record's routing table
decides (see server.routing.table): by the sticky key's bucket when the table names a sticky key
and the request carries a usable one, else by a random draw over the weights. Each decision is
counted on the chosen version's recorder (a list index; Prometheus sees it at the next flush).
"""

from __future__ import annotations

import random
from collections.abc import Callable

from server.errors import ModelNotReadyError
from server.repository.manager import ModelRepository
from server.routing.sticky import bucket_after, key_bytes
from server.routing.table import BUCKETS, Route, RoutingTable, choose
from server.types import InferRequest
from server.versions.loaded import LoadedVersion

InvalidKeyObserver = Callable[[str, str], None]
"""Told (model, reason) when a request's sticky value cannot be used and it is routed by weight."""


def _ignore(model: str, reason: str) -> None:
    pass


class Router:
    """Picks the loaded version (and the shadow copy, if any) for each request."""

    def __init__(
        self,
        repository: ModelRepository,
        *,
        draw: Callable[[], float] = random.random,
        on_invalid_key: InvalidKeyObserver = _ignore,
    ) -> None:
        self._repository = repository
        self._draw = draw
        self._on_invalid_key = on_invalid_key

    def select(self, request: InferRequest) -> tuple[LoadedVersion, LoadedVersion | None]:
        """(the version that serves `request`, the version that gets a shadow copy or None).

        NOT_FOUND / UNAVAILABLE errors name what is missing.
        """
        if request.model_version:
            loaded = self._repository.resolve(request.model_name, request.model_version)
            loaded.recorder.routed(Route.PINNED)
            return loaded, None
        record = self._repository.record(request.model_name)
        table = record.routing
        decision = None if table is None else self._decide(table, request)
        if table is None or decision is None:
            self._repository.resolve(request.model_name)  # no version is ready: raises, with the model's reason
            raise ModelNotReadyError(f"model '{request.model_name}' has no ready version")
        version, route = decision
        loaded = record.loaded[version]
        loaded.recorder.routed(route)
        if table.shadow_version is not None and self._copied(request, table):
            return loaded, record.loaded.get(table.shadow_version)
        return loaded, None

    def _copied(self, request: InferRequest, table: RoutingTable) -> bool:
        """Whether the shadow version gets a copy: the native path's decision when it drew one, else a draw."""
        decided = request.drawn.decision(request.drawn.shadow)
        return self._draw() < table.shadow_fraction if decided is None else decided

    def _decide(self, table: RoutingTable, request: InferRequest) -> tuple[int, Route] | None:
        key = self._sticky_key(table, request) if table.sticky_key else None
        if key is None:
            return choose(table, int(self._draw() * BUCKETS), False)
        return choose(table, bucket_after(table.salt_crc, key), True)

    def _sticky_key(self, table: RoutingTable, request: InferRequest) -> bytes | None:
        """The request's sticky key: the parameter, else the gRPC metadata entry; None = route by weight."""
        value: object = request.parameters.get(table.parameter_key) if table.parameter_key else None
        if value is None and table.metadata_key and request.metadata is not None:
            name = table.metadata_key
            for entry, entry_value in request.metadata() or ():
                if entry == name:
                    value = entry_value
                    break
        if value is None:
            return None
        key = key_bytes(value)
        if isinstance(key, str):
            self._on_invalid_key(request.model_name, key)
            return None
        return key
