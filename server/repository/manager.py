"""The model repository at run time: load, reload, unload and look up model versions.

Loads run on worker threads through the injected loader, so serving other
models never pauses. A reload loads the new versions first, switches traffic,
then drains and closes the old ones: no request sees a gap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import replace
from pathlib import Path

from server.confinement import RepositoryConfinement
from server.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError
from server.keyed_locks import KeyedLocks
from server.model_config import ModelConfig, load_model_config
from server.names import shown
from server.repository.policy import select_versions
from server.repository.records import IndexEntry, ModelRecord, State, VersionStatus
from server.repository.scanner import ModelSource, RepositoryLayout
from server.routing.config import RoutingConfig
from server.routing.table import RoutingTable, default_table
from server.versions.loaded import LoadedVersion

log = logging.getLogger(__name__)

#: The reason of a model unloaded on purpose (RepositoryModelUnload): not a failure, so strict readiness skips it.
UNLOADED = "unloaded"

_MAX_VERSION_DIGITS = 255
"""A version is a directory name, and no file system holds a longer one."""

VersionLoader = Callable[[str, int, Path, ModelConfig], Awaitable[LoadedVersion]]
"""Loads one version: (model name, version, model file, config) -> LoadedVersion."""

ChangeListener = Callable[[ModelRecord], None]
"""Told about a model's new record after every state change."""

RoutingPolicy = Callable[[RoutingConfig, str, Collection[int]], RoutingTable]
"""(routing config, model, loaded versions) -> the routing table; ModelLoadError when the routing is invalid."""


class ModelRepository:
    """All models under one directory, and which of their versions serve traffic."""

    def __init__(
        self,
        root: Path,
        loader: VersionLoader,
        *,
        drain_timeout_s: float = 30.0,
        listeners: Sequence[ChangeListener] = (),
        routing: RoutingPolicy = default_table,
        allow_external_files: bool = False,
        layout: RepositoryLayout | None = None,
    ) -> None:
        """`allow_external_files`: open model files that resolve outside `root` (see server.confinement).
        `layout`: where each model's directory is (default: `root/<name>`; see server.repository.scanner)."""
        self._root = root
        self._layout = layout if layout is not None else RepositoryLayout(root)
        self._confinement = RepositoryConfinement(root, allow_external_files)
        self._loader = loader
        self._route = routing
        self._drain_timeout_s = drain_timeout_s
        self._listeners = list(listeners)
        self._records: dict[str, ModelRecord] = {}
        # Per-name locks exist only while a load, unload or reroute of that name runs or waits.
        self._locks = KeyedLocks()

    @property
    def root(self) -> Path:
        return self._root

    @property
    def names_in_progress(self) -> int:
        """Names with a load, unload or reroute running or waiting: the size of the per-name lock table."""
        return len(self._locks)

    def add_listener(self, listener: ChangeListener) -> None:
        self._listeners.append(listener)

    # ------------------------------------------------------------------ lookups

    def records(self) -> list[ModelRecord]:
        return [self._records[name] for name in sorted(self._records)]

    def record(self, name: str) -> ModelRecord:
        record = self._records.get(name)
        if record is None:
            raise ModelNotFoundError(f"model {shown(name)!r} is not in the repository{self._known_hint()}")
        return record

    async def require_known(self, name: str) -> None:
        """NOT_FOUND unless `name` is a model this process knows or a model directory in the repository.

        Admin calls check this before any per-name state is made, so a flood of made-up names
        (of any length) leaves nothing behind.
        """
        if name in self._records or await asyncio.to_thread(self._layout.has, name):
            return
        raise ModelNotFoundError(
            f"model {shown(name)!r} has no directory in the repository {self._root}{self._known_hint()}"
        )

    def resolve(self, name: str, version: str = "") -> LoadedVersion:
        """A loaded version by number; empty `version` = the model's default (see ModelRecord.default)."""
        record = self.record(name)
        if not version:
            default = record.default()
            if default is None:
                raise ModelNotReadyError(f"model '{name}' has no ready version{_because(record)}")
            return default
        number = _parse_version(name, version)
        loaded = record.loaded.get(number)
        if loaded is not None:
            return loaded
        status = record.status.get(number)
        if status is not None:
            detail = f": {status.reason}" if status.reason else ""
            raise ModelNotReadyError(f"version {number} of model '{name}' is {status.state}{detail}")
        available = ", ".join(str(v) for v in sorted(record.loaded)) or "none"
        raise ModelNotFoundError(f"version {number} of model '{name}' does not exist; ready versions: {available}")

    def every_model_ready(self) -> bool:
        """At least one model, and every model not unloaded on purpose has a ready version (strict readiness)."""
        records = [record for record in self._records.values() if record.reason != UNLOADED]
        return bool(records) and all(record.ready for record in records)

    def is_ready(self, name: str, version: str = "") -> bool:
        try:
            self.resolve(name, version)
        except (ModelNotFoundError, ModelNotReadyError):
            return False
        return True

    def loaded_versions(self, name: str = "", version: str = "") -> list[LoadedVersion]:
        """Loaded versions filtered by model name and version (empty = all)."""
        if name:
            record = self.record(name)
            if version:
                return [self.resolve(name, version)]
            return [record.loaded[v] for v in sorted(record.loaded)]
        return [record.loaded[v] for record in self.records() for v in sorted(record.loaded)]

    async def index(self, ready_only: bool = False) -> list[IndexEntry]:
        """Every model on disk or known, one entry per version, with state and reason."""
        on_disk = await asyncio.to_thread(self._layout.names)
        entries: list[IndexEntry] = []
        for name in sorted(set(on_disk) | set(self._records)):
            record = self._records.get(name)
            if record is None:
                entries.append(IndexEntry(name, "", State.UNAVAILABLE, "not loaded"))
                continue
            if not record.status:
                entries.append(IndexEntry(name, "", State.UNAVAILABLE, record.reason))
            for version in sorted(record.status):
                status = record.status[version]
                entries.append(IndexEntry(name, str(version), status.state, status.reason))
        if ready_only:
            entries = [entry for entry in entries if entry.state == State.READY]
        return entries

    # ------------------------------------------------------------ load / unload

    async def load_all(self) -> None:
        """Load every model on disk concurrently; failures are recorded, not raised."""
        names = await asyncio.to_thread(self._layout.names)
        results = await asyncio.gather(*(self.load(name) for name in names), return_exceptions=True)
        for name, result in zip(names, results, strict=True):
            # A ModelLoadError was logged where it happened, with its detail; only the unexpected is logged here.
            if isinstance(result, BaseException) and not isinstance(result, ModelLoadError):
                log.error("model failed to load", extra={"model": name, "reason": str(result)})

    async def load(self, name: str) -> ModelRecord:
        """Load or reload a model from disk. Raises if no version could be loaded."""
        await self.require_known(name)
        async with self._locks.hold(name):
            source = await asyncio.to_thread(self._layout.scan, name)
            if source is None:  # removed from disk since require_known
                raise ModelNotFoundError(
                    f"model {shown(name)!r} has no directory in the repository {self._root}{self._known_hint()}"
                )
            old = self._records.get(name)
            try:
                await asyncio.to_thread(self._confinement.check, source.path, "model directory")
                config = await asyncio.to_thread(load_model_config, source.path)
                selected = _select(source, config)
            except ModelLoadError as exc:
                self._fail_model(name, old, str(exc))
                raise
            record = await self._load_versions(source, config, selected, old)
            if old is not None and record is not old:
                await self._retire(old.loaded.values())
            return record

    async def unload(self, name: str) -> None:
        """Stop serving a model: new requests get UNAVAILABLE, in-flight ones finish."""
        self.record(name)  # NOT_FOUND before any per-name state exists
        async with self._locks.hold(name):
            old = self.record(name)
            unloading = {v: VersionStatus(State.UNLOADING) for v in old.loaded}
            self._publish(ModelRecord(name, old.config, status={**old.status, **unloading}))
            await self._retire(old.loaded.values())
            unloaded = {v: VersionStatus(State.UNAVAILABLE, UNLOADED) for v in old.status}
            self._publish(ModelRecord(name, old.config, status=unloaded, reason=UNLOADED))
            log.info("model unloaded", extra={"model": name})

    async def reroute(self, name: str) -> ModelRecord:
        """Republish the model's record with its routing table computed afresh (after a run-time routing change).

        Takes the model's lock, so it never interleaves with a reload: it applies to whichever
        versions serve when it runs.
        """
        self.record(name)  # NOT_FOUND before any per-name state exists
        async with self._locks.hold(name):
            record = self.record(name)
            if not record.loaded or record.config is None:
                raise ModelNotReadyError(f"model '{name}' has no ready version{_because(record)}")
            updated = replace(record, routing=self._route(record.config.routing, name, record.loaded.keys()))
            self._publish(updated)
            return updated

    async def unload_all(self) -> None:
        await asyncio.gather(*(self.unload(name) for name in list(self._records)))

    # ---------------------------------------------------------------- internals

    def _known_hint(self) -> str:
        known = ", ".join(sorted(self._records))
        return f"; known models: {known}" if known else ""

    def _publish(self, record: ModelRecord) -> None:
        self._records[record.name] = record
        for listener in self._listeners:
            listener(record)

    def _fail_model(self, name: str, old: ModelRecord | None, reason: str) -> None:
        if old is not None and old.loaded:
            # A failed reload leaves the previous versions serving.
            self._publish(replace(old, reason=f"reload failed: {reason}"))
            log.error("model reload failed; previous versions keep serving", extra={"model": name, "reason": reason})
            return
        self._publish(ModelRecord(name, None, reason=reason))
        log.error("model unavailable", extra={"model": name, "reason": reason})

    async def _load_versions(
        self, source: ModelSource, config: ModelConfig, selected: list[int], old: ModelRecord | None
    ) -> ModelRecord:
        name = source.name
        if old is None or not old.loaded:
            self._publish(ModelRecord(name, config, status={v: VersionStatus(State.LOADING) for v in selected}))
        paths = [source.versions[v] / config.model_filename for v in selected]
        results = await asyncio.gather(
            *(self._load_version(name, v, path, config) for v, path in zip(selected, paths, strict=True)),
            return_exceptions=True,
        )
        loaded: dict[int, LoadedVersion] = {}
        status: dict[int, VersionStatus] = {}
        for version, result in zip(selected, results, strict=True):
            if isinstance(result, LoadedVersion):
                loaded[version] = result
                status[version] = VersionStatus(State.READY)
            else:
                reason = _reason(result)
                status[version] = VersionStatus(State.UNAVAILABLE, reason)
                log.error("model version failed to load", extra={"model": name, "version": version, "reason": reason})
        reloading = old is not None and bool(old.loaded)
        if not loaded or (reloading and len(loaded) < len(selected)):
            # A reload applies whole or not at all: a partial one would silently move traffic.
            reasons = "; ".join(f"version {v}: {s.reason}" for v, s in sorted(status.items()) if s.reason)
            await self._close(loaded.values())
            if old is not None and old.loaded:
                self._fail_model(name, old, reasons)
                raise ModelLoadError(
                    f"failed to reload model '{name}'; nothing changed, previous versions keep serving: {reasons}"
                )
            self._publish(ModelRecord(name, config, status=status, reason=reasons))
            raise ModelLoadError(f"failed to load model '{name}': {reasons}")
        try:
            routing = self._route(config.routing, name, loaded.keys())
        except ModelLoadError as exc:
            await self._close(loaded.values())
            if old is not None and old.loaded:
                self._fail_model(name, old, str(exc))
                raise ModelLoadError(
                    f"failed to reload model '{name}'; nothing changed, previous versions keep serving: {exc}"
                ) from None
            unavailable = {v: VersionStatus(State.UNAVAILABLE, str(exc)) for v in status}
            self._publish(ModelRecord(name, config, status=unavailable, reason=str(exc)))
            log.error("model unavailable", extra={"model": name, "reason": str(exc)})
            raise
        record = ModelRecord(name, config, loaded, status, routing=routing)
        self._publish(record)
        log.info(
            "model loaded",
            extra={"model": name, "versions": sorted(record.loaded), "providers": _providers(record)},
        )
        return record

    async def _load_version(self, name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        """The injected loader behind the path rule: a file that resolves outside the repository is never opened."""
        await asyncio.to_thread(self._confinement.check, path, "model file")
        return await self._loader(name, version, path, config)

    async def _close(self, versions: Iterable[LoadedVersion]) -> None:
        """Close versions that never served (a load that is being abandoned)."""
        for loaded in versions:
            await loaded.close()

    async def _retire(self, versions: Iterable[LoadedVersion]) -> None:
        for loaded in versions:
            if not await loaded.drain(self._drain_timeout_s):
                log.warning(
                    "unloading with requests still in flight after the drain timeout",
                    extra={"model": loaded.model_name, "version": loaded.version},
                )
            await loaded.close()


def _select(source: ModelSource, config: ModelConfig) -> list[int]:
    if not source.versions:
        raise ModelLoadError(
            f"model directory {source.path} has no numbered version directories"
            f" (expected e.g. {source.path}/1/{config.model_filename})"
        )
    selected = select_versions(config.versions, source.versions)
    if not selected:
        found = ", ".join(str(v) for v in sorted(source.versions))
        raise ModelLoadError(
            f"version policy {config.versions.policy!r} selects none of the versions on disk ({found})"
        )
    return selected


def _parse_version(name: str, version: str) -> int:
    if not (version.isascii() and version.isdecimal()):
        raise ModelNotFoundError(
            f"version {shown(version)!r} of model {shown(name)!r} does not exist; versions are whole numbers"
        )
    if len(version) > _MAX_VERSION_DIGITS:  # int() refuses over 4,300 digits: that would be INTERNAL
        raise ModelNotFoundError(f"version {shown(version)!r} of model {shown(name)!r} does not exist")
    return int(version)


def _because(record: ModelRecord) -> str:
    return f" ({record.reason})" if record.reason else ""


def _reason(error: BaseException) -> str:
    if isinstance(error, ModelLoadError):
        return str(error)
    log.error("unexpected error while loading a model version", exc_info=error)
    return f"{type(error).__name__}: {error}"


def _providers(record: ModelRecord) -> list[str]:
    providers: set[str] = set()
    for loaded in record.loaded.values():
        providers.update(loaded.providers)
    return sorted(providers)
