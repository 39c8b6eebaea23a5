"""The native ModelInfer path's table: which versions C++ may serve, and how each model routes a request that
names no version. Pure: records in, plain tuples out (native/src/fast_path.h reads them).

Only the plain case goes native; anything else stays on the Python path, which is the specification:
- a version whose inputs and outputs all have fixed-size datatypes (no BYTES) (its `default_timeout_us` goes in
  the row: C++ applies server.scheduling.deadline_of's rule);
- for requests naming no version, the model's routing table as data: its two bucket layouts
  (server.routing.table: the configured weights, and the fallback over the ready versions) with each version's key
  in place of its number, where the sticky key is read (a request parameter, gRPC metadata) and the salt's crc32,
  so that C++ makes the same decision as server.traffic.router (a random bucket, or the sticky key's bucket by
  server.routing.sticky). A request drawn for the model's shadow copy goes to the Python path, marked drawn, and
  a model whose routed versions are not all served natively keeps its unversioned requests on the Python router.
Requests naming their version go native for every eligible loaded version.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from server.repository.records import ModelRecord
from server.routing.table import Layout as RoutingLayout
from server.versions.loaded import LoadedVersion

VersionRow = tuple[Any, ...]
Layout = list[tuple[int, int]]
"""(first bucket, version key) per version with weight, ascending (server.routing.table.Layout)."""
ModelRow = tuple[str, list[tuple[str, int]], Layout, Layout, str, str, int, float]
"""(model, [(version text, key)] for pinned requests, primary layout, fallback layout, sticky parameter or "",
sticky metadata key or "", crc32 of the routing salt, shadow fraction: the share of unversioned requests C++ draws
for the shadow copy and hands to the Python path, which makes it)."""

NOT_READY = -2
"""A primary-layout version that cannot take traffic now: the fallback layout decides (Route.FALLBACK)."""
_PYTHON_ROUTES: tuple[Layout, Layout, str, str, int, float] = ([], [], "", "", 0, 0.0)
"""No layouts: C++ hands every request naming no version to the Python router."""


class VersionKeys:
    """Small integer handles of loaded versions, the native side's name for them."""

    def __init__(self) -> None:
        self._next = itertools.count(1)
        self._keys: dict[int, int] = {}  # id(loaded) -> key, while the version is known
        self._versions: dict[int, LoadedVersion] = {}

    def key(self, loaded: LoadedVersion) -> int:
        key = self._keys.get(id(loaded))
        if key is None or self._versions.get(key) is not loaded:
            key = next(self._next)
            self._keys[id(loaded)] = key
            self._versions[key] = loaded
        return key

    def version(self, key: int) -> LoadedVersion | None:
        return self._versions.get(key)

    def known(self) -> list[int]:
        return list(self._versions)

    def forget(self, key: int) -> None:
        loaded = self._versions.pop(key, None)
        if loaded is not None and self._keys.get(id(loaded)) == key:
            del self._keys[id(loaded)]


def eligible(loaded: LoadedVersion) -> bool:
    """Whether requests to this version may take the native path."""
    signature = loaded.signature
    tensors = (*signature.inputs, *signature.outputs)
    return all(spec.datatype != "BYTES" for spec in tensors)


def version_row(loaded: LoadedVersion, key: int) -> VersionRow:
    policy = loaded.batcher.policy
    signature = loaded.signature
    return (
        key,
        loaded.model_name,
        loaded.version_text,
        [(spec.name, spec.datatype, list(spec.shape)) for spec in signature.inputs],
        list(signature.output_names),
        policy.max_batch_size,
        signature.max_batch_size_configured,
        policy.merge,
        policy.max_queue_size,
        policy.instances,
        list(policy.preferred_batch_sizes),
        policy.max_queue_delay_us,
        policy.priority_levels,
        loaded.config.batching.default_priority_level,
        loaded.config.batching.default_timeout_us,
    )


def unversioned_routes(record: ModelRecord, keys: VersionKeys) -> tuple[Layout, Layout, str, str, int, float]:
    """How C++ routes the model's requests that name no version: (primary layout, fallback layout, sticky parameter,
    sticky metadata key, salt crc32, shadow fraction), or empty layouts when the Python router must (no table, or a
    routed version that is not served natively)."""
    table = record.routing
    if table is None:
        return _PYTHON_ROUTES

    def keyed(layout: RoutingLayout | None, only_ready: bool) -> Layout | None:
        """`layout` with version keys (NOT_READY for a version not ready, when `only_ready`); None when one of its
        versions is not served natively."""
        rows: Layout = []
        if layout is None:
            return rows
        for start, version in zip(layout.starts, layout.versions, strict=True):
            loaded = record.loaded.get(version)
            if only_ready and version not in table.ready:
                rows.append((start, NOT_READY))
            elif loaded is not None and eligible(loaded):
                rows.append((start, keys.key(loaded)))
            else:
                return None
        return rows

    primary, fallback = keyed(table.primary, True), keyed(table.fallback, False)
    if primary is None or fallback is None:
        return _PYTHON_ROUTES
    if not fallback and all(key == NOT_READY for _, key in primary):
        return _PYTHON_ROUTES  # no version can take the request: the Python router says why
    shadow = table.shadow_fraction if table.shadow_version is not None else 0.0
    return primary, fallback, table.parameter_key, table.metadata_key, table.salt_crc, shadow


def fast_table(records: Iterable[ModelRecord], keys: VersionKeys) -> tuple[list[VersionRow], list[ModelRow]]:
    """The rows of NativeServer.set_fast_table for `records`."""
    versions: list[VersionRow] = []
    models: list[ModelRow] = []
    for record in records:
        pinned: list[tuple[str, int]] = []
        for _, loaded in sorted(record.loaded.items()):
            if eligible(loaded):
                key = keys.key(loaded)
                versions.append(version_row(loaded, key))
                pinned.append((loaded.version_text, key))
        if not pinned:
            continue
        models.append((record.name, pinned, *unversioned_routes(record, keys)))
    return versions, models
