"""State records of the repository: per model, and per version.

A ModelRecord is an immutable snapshot: every change (load, reload, unload, a routing change)
publishes a new record, so a request that read the record sees one consistent set of versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from server.model_config import ModelConfig
from server.routing.table import RoutingTable
from server.versions.loaded import LoadedVersion


class State(StrEnum):
    """Version states, spelled as Triton's RepositoryIndex reports them."""

    READY = "READY"
    LOADING = "LOADING"
    UNLOADING = "UNLOADING"
    UNAVAILABLE = "UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class VersionStatus:
    state: State
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ModelRecord:
    """What the repository knows about one model at one moment. Replaced, never mutated."""

    name: str
    config: ModelConfig | None
    loaded: Mapping[int, LoadedVersion] = field(default_factory=dict)
    status: Mapping[int, VersionStatus] = field(default_factory=dict)
    reason: str = ""
    """Why the model as a whole is unavailable (bad config, no versions), if it is."""
    routing: RoutingTable | None = None
    """How unversioned requests spread over the loaded versions; None while none is loaded."""

    def __post_init__(self) -> None:
        # Read-only views over private copies: a caller's dict can't change a published record.
        object.__setattr__(self, "loaded", MappingProxyType(dict(self.loaded)))
        object.__setattr__(self, "status", MappingProxyType(dict(self.status)))

    @property
    def ready(self) -> bool:
        return bool(self.loaded)

    def latest(self) -> LoadedVersion | None:
        """The highest ready version."""
        return self.loaded[max(self.loaded)] if self.loaded else None

    def default(self) -> LoadedVersion | None:
        """The version that speaks for the model when none is named: the stable (most weight), else the highest."""
        stable = None if self.routing is None else self.routing.stable
        if stable is not None and stable in self.loaded:
            return self.loaded[stable]
        return self.latest()


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str
