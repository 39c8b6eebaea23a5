"""Per-model `config.toml`: an optional, validated description of how to serve a model.

Everything can be inferred from the ONNX file; the config only overrides.
Unknown keys are errors, so a typo makes the model UNAVAILABLE with a clear
reason instead of being silently ignored.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from server.errors import ModelLoadError

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


class InstancesConfig(_Section):
    """How many independent sessions serve each version."""

    count: int = Field(1, ge=1, le=64)


class ModelConfig(_Section):
    """The whole `config.toml` of one model."""

    max_batch_size: int | None = Field(None, ge=0)
    """Largest batch accepted; 0 disables batching; unset = inferred from the ONNX file."""
    platform: str = "onnxruntime_onnx"
    model_filename: str = "model.onnx"
    versions: VersionPolicy = VersionPolicy()
    runtime: RuntimeConfig = RuntimeConfig()
    instances: InstancesConfig = InstancesConfig()


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors():
        where = ".".join(str(loc) for loc in item["loc"]) or "(top level)"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


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
        raise ModelLoadError(f"{path} is invalid: {_describe(exc)}") from None
