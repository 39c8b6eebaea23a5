"""Per-model `config.toml`: an optional, validated description of how to serve a model.

Everything can be inferred from the ONNX file; the config only overrides.
Unknown keys are errors, so a typo makes the model UNAVAILABLE with a clear
reason instead of being silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from server.errors import ModelLoadError
from server.names import shown
from server.predictions.config import TelemetryConfig
from server.routing.config import RoutingConfig
from server.suggestions import describe

CONFIG_FILE = "config.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VersionPolicy(_Section):
    """Which numbered version directories are served."""

    policy: Literal["all", "latest", "specific"] = "all"
    latest: int = Field(1, ge=1)
    """With policy = "latest": how many of the highest versions."""
    versions: tuple[int, ...] = ()
    """With policy = "specific": the version numbers."""

    @model_validator(mode="after")
    def _specific_needs_versions(self) -> VersionPolicy:
        if self.policy == "specific" and not self.versions:
            raise ValueError('policy "specific" needs a non-empty `versions` list')
        return self


class RuntimeConfig(_Section):
    """ONNX Runtime options for this model; unset values use the server defaults."""

    providers: tuple[str, ...] | None = None
    intra_op_threads: int | None = Field(None, ge=0)
    inter_op_threads: int | None = Field(None, ge=0)
    graph_optimization: Literal["disable", "basic", "extended", "all"] = "all"
    memory_arena: bool | None = None
    """ONNX Runtime's CPU memory arena: faster allocation, but it keeps its peak size for good."""


class InstancesConfig(_Section):
    """How many independent sessions serve each version."""

    count: int = Field(1, ge=1, le=64)


class BatchingConfig(_Section):
    """The dynamic batcher and its queue (every version has one)."""

    enabled: bool = True
    """Merge concurrent requests into one execution (only for models with max_batch_size > 0)."""
    max_queue_delay_us: int = Field(0, ge=0, le=10_000_000)
    """How long a batch may wait for more requests; 0 = batch only what is already queued."""
    preferred_batch_sizes: tuple[int, ...] = ()
    """Stop waiting (max_queue_delay_us) as soon as the batch reaches one of these sizes."""
    max_queue_size: int = Field(1024, ge=0)
    """Requests waiting at most; a full queue rejects with RESOURCE_EXHAUSTED. 0 = unbounded."""
    default_timeout_us: int = Field(0, ge=0)
    """Queue timeout for requests without a deadline or `timeout` parameter; 0 = none."""
    priority_levels: int = Field(1, ge=1, le=16)
    """Request parameter `priority` may be 1..priority_levels (1 first); 0 or absent = default level."""
    default_priority_level: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _default_level_in_range(self) -> BatchingConfig:
        if self.default_priority_level > self.priority_levels:
            raise ValueError("default_priority_level must be between 1 and priority_levels")
        if any(size < 1 for size in self.preferred_batch_sizes):
            raise ValueError("preferred_batch_sizes must be positive")
        return self


class ModelConfig(_Section):
    """The whole `config.toml` of one model."""

    max_batch_size: int | None = Field(None, ge=0)
    """Largest batch accepted; 0 disables batching; unset = inferred from the ONNX file."""
    platform: str = "onnxruntime_onnx"
    model_filename: str = "model.onnx"
    """The model file in each version directory: a file name or a relative path below it, without '..'."""
    versions: VersionPolicy = VersionPolicy()
    runtime: RuntimeConfig = RuntimeConfig()
    instances: InstancesConfig = InstancesConfig()
    batching: BatchingConfig = BatchingConfig()
    routing: RoutingConfig = RoutingConfig()
    """Weights, sticky key, shadow and judge; without weights, unversioned requests go to the highest ready version."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """What the model predicts: watched outputs (and inputs) and the drift window."""

    @field_validator("model_filename")
    @classmethod
    def _filename_stays_in_version_dir(cls, value: str) -> str:
        # The repository's path rule starts here: a config must not name files elsewhere (see server.confinement).
        if not _is_relative_inside(value):
            raise ValueError(
                "must be a file name or a relative path inside the version directory, without '..'; "
                f"got {shown(value)!r}. To serve a file kept elsewhere, link it into the version directory "
                "and start the server with --allow-external-model-files"
            )
        return value


def _is_relative_inside(filename: str) -> bool:
    """A non-empty relative POSIX path that never steps up ('..'); backslashes and NUL bytes are refused too."""
    if not filename or "\\" in filename or "\0" in filename:
        return False
    path = PurePosixPath(filename)
    return not path.is_absolute() and ".." not in path.parts


def load_model_config(model_dir: Path) -> ModelConfig:
    """Read and validate `model_dir/config.toml`; defaults when the file is absent."""
    path = model_dir / CONFIG_FILE
    if not path.is_file():
        return ModelConfig()
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelLoadError(f"{path} is not valid TOML: {exc}") from None
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as exc:
        raise ModelLoadError(f"{path} is invalid: {describe(exc, ModelConfig)}") from None
