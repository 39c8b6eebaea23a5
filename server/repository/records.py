"""State records of the repository: per model, and per version."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from server.repository.config import ModelConfig
from server.repository.loaded import LoadedVersion


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


@dataclass(slots=True)
class ModelRecord:
    """What the repository knows about one model. Replaced, not mutated, on (re)load."""

    name: str
    config: ModelConfig | None
    loaded: dict[int, LoadedVersion] = field(default_factory=dict)
    status: dict[int, VersionStatus] = field(default_factory=dict)
    reason: str = ""
    """Why the model as a whole is unavailable (bad config, no versions), if it is."""

    @property
    def ready(self) -> bool:
        return bool(self.loaded)

    def latest(self) -> LoadedVersion | None:
        """The highest ready version: what an empty model_version selects for now."""
        return self.loaded[max(self.loaded)] if self.loaded else None


@dataclass(frozen=True, slots=True)
class IndexEntry:
    name: str
    version: str
    state: str
    reason: str
