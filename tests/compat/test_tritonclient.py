"""NVIDIA's official `tritonclient.grpc` works against our server.

tritonclient's protobuf stubs clash with ours (both are package `inference`), so the client
runs in a child process: `triton_checks.py` prints one JSON result per check.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import EXAMPLE_MODELS
from tests.support.onnx_models import add_sub, identity, write_model
from tests.support.process import ServerProcess

SCRIPT = Path(__file__).with_name("triton_checks.py")

#: Every check the script must report, in its order; one missing from the output fails.
CHECK_NAMES = [
    "health",
    "server_metadata",
    "model_metadata",
    "model_config",
    "infer_simple",
    "infer_bytes",
    "infer_fp16",
    "infer_fraud",
    "async_infer",
    "stream_infer",
    "errors",
    "statistics",
    "repository",
]


def _repository(root: Path) -> Path:
    write_model(root, "simple", add_sub(), versions=(1, 2), config="max_batch_size = 8\n")
    write_model(root, "identity_bytes", identity("BYTES"))
    write_model(root, "identity_fp16", identity("FP16"))
    shutil.copytree(EXAMPLE_MODELS / "fraud", root / "fraud")
    return root


@pytest.fixture(scope="module")
def checks_run(tmp_path_factory: pytest.TempPathFactory) -> subprocess.CompletedProcess[str]:
    repository = _repository(tmp_path_factory.mktemp("triton_compat_models"))
    with ServerProcess(repository) as server:
        return subprocess.run(
            [sys.executable, str(SCRIPT), server.address], capture_output=True, text=True, timeout=120, check=False
        )


@pytest.fixture(scope="module")
def report(checks_run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        parsed = json.loads(checks_run.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"no JSON on stdout (exit {checks_run.returncode}); stderr:\n{checks_run.stderr}")
    assert isinstance(parsed, dict)
    return parsed


def test_script_exits_cleanly(checks_run: subprocess.CompletedProcess[str], report: dict[str, Any]) -> None:
    assert checks_run.returncode == 0, checks_run.stderr
    assert sorted(report) == sorted(CHECK_NAMES)


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_tritonclient_check(report: dict[str, Any], name: str) -> None:
    assert name in report, f"check {name!r} missing from the script's output"
    assert report[name]["ok"], report[name]["error"]
