"""The native ModelInfer path's table: which versions C++ may serve, and how each model routes a request that
names no version. Pure: records in, plain tuples out (native/src/fast_path.h reads them).

Only the plain case goes native; anything else stays on the Python path, which is the specification:
- a version whose inputs and outputs all have fixed-size datatypes (no BYTES), and no default queue timeout
  (`default_timeout_us` needs the Python path's deadline rules);
- for requests naming no version, a model whose routing sends everything to one ready version: one positive
  weight, no sticky key, no shadow. Weighted splits, sticky keys and shadows stay on the Python router.
Requests naming their version go native for every eligible loaded version.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from server.repository.records import ModelRecord
from server.versions.loaded import LoadedVersion

VersionRow = tuple[Any, ...]
ModelRow = tuple[str, list[tuple[str, int]], int]


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
    return all(spec.datatype != "BYTES" for spec in tensors) and loaded.config.batching.default_timeout_us == 0


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
    )


def default_version(record: ModelRecord) -> int | None:
    """The one version every request naming no version goes to, or None when the router must decide."""
    table = record.routing
    if table is None or table.sticky_key or table.shadow_version is not None:
        return None
    weighted = [version for version, weight in table.weights.items() if weight > 0]
    if len(weighted) != 1 or weighted[0] not in table.ready or weighted[0] not in record.loaded:
        return None
    return weighted[0]


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
        default = default_version(record)
        default_key = -1
        if default is not None and eligible(record.loaded[default]):
            default_key = keys.key(record.loaded[default])
        models.append((record.name, pinned, default_key))
    return versions, models
