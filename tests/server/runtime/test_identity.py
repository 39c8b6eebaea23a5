"""Model identity: the file's sha256 and the ONNX producer, model_version and metadata_props."""

from __future__ import annotations

import hashlib
from pathlib import Path

import onnx
import onnxruntime as ort

from server.runtime.identity import identify
from tests.support import onnx_models


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_identity_of_a_file_with_lineage(tmp_path: Path) -> None:
    model = onnx.load_from_string(onnx_models.scaled(2.0))
    model.model_version = 7
    onnx.helper.set_model_props(model, {"git_commit": "abc123", "training_data_hash": "sha256:feed", "owner": "risk"})
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    identity = identify(path, _session(path))
    assert identity.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (identity.producer, identity.onnx_model_version) == ("tests", "7")
    assert (identity.source_commit, identity.training_data) == ("abc123", "sha256:feed")
    assert identity.metadata["owner"] == "risk"


def test_identity_without_lineage(tmp_path: Path) -> None:
    path = tmp_path / "model.onnx"
    path.write_bytes(onnx_models.scaled(1.0))
    identity = identify(path, _session(path))
    assert identity.onnx_model_version == "" and identity.source_commit == "" and identity.metadata == {}
