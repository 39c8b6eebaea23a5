"""Which artifact a loaded version is: the file's sha256 and what the ONNX file says about itself.

Exported as `inference_model_info` and in ModelConfig, so an operator can prove which file served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: ONNX Runtime reports an unset model_version as INT64_MAX.
_UNSET_VERSION = 2**63 - 1
#: metadata_props keys that name the source commit and the training data, first match wins.
COMMIT_KEYS = ("git_commit", "commit", "source_commit")
TRAINING_DATA_KEYS = ("training_data_hash", "training_data", "dataset_hash", "dataset")


@dataclass(frozen=True, slots=True)
class ModelIdentity:
    sha256: str
    producer: str = ""
    """The ONNX producer_name (the exporter or tool that wrote the file)."""
    onnx_model_version: str = ""
    """The ONNX model_version field, empty when unset."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """The file's metadata_props."""

    @property
    def source_commit(self) -> str:
        return _first(self.metadata, COMMIT_KEYS)

    @property
    def training_data(self) -> str:
        return _first(self.metadata, TRAINING_DATA_KEYS)


def _first(metadata: Mapping[str, str], keys: tuple[str, ...]) -> str:
    return next((metadata[key] for key in keys if metadata.get(key)), "")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file, read in chunks. Blocking: call it from a worker thread."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def identify(path: Path, session: Any) -> ModelIdentity:
    """The identity of the model file at `path`, loaded in the ONNX Runtime `session`."""
    meta = session.get_modelmeta()
    version = int(meta.version)
    return ModelIdentity(
        sha256=file_sha256(path),
        producer=str(meta.producer_name),
        onnx_model_version="" if version in (0, _UNSET_VERSION) else str(version),
        metadata={str(k): str(v) for k, v in dict(meta.custom_metadata_map).items()},
    )
