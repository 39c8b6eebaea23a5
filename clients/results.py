"""Plain, immutable result types returned by the clients (no protobuf)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy.typing as npt


@dataclass(frozen=True)
class TensorMetadata:
    """Name, protocol datatype and shape of a model input or output; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class ModelMetadata:
    """What ModelMetadata reports about a model: its versions, platform and signature."""

    name: str
    versions: tuple[str, ...]
    platform: str
    inputs: tuple[TensorMetadata, ...]
    outputs: tuple[TensorMetadata, ...]


@dataclass(frozen=True)
class ServerMetadata:
    """Server name, version and the protocol extensions it supports."""

    name: str
    version: str
    extensions: tuple[str, ...]


@dataclass(frozen=True)
class RepositoryEntry:
    """One row of the model repository index: a model version, its state and the reason for it."""

    name: str
    version: str
    state: str
    reason: str


@dataclass(frozen=True)
class InferResult:
    """A ModelInfer answer with its envelope: which version served it (the router's choice when none was named)."""

    model_name: str
    model_version: str
    request_id: str
    outputs: dict[str, npt.NDArray[Any]]
