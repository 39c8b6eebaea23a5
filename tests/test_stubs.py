"""The checked-in gRPC stubs under oip/v1 are exactly what scripts/gen_stubs.sh generates from proto/."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKED_IN = REPO_ROOT / "oip" / "v1"
HINT = "the checked-in stubs are stale; run `make stubs` and commit oip/v1"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("grpc_tools") is None, reason="grpc_tools (grpcio-tools) is not installed"
)


def _files(directory: Path) -> set[str]:
    # __init__.py is written by hand, not by protoc.
    return {
        path.name
        for path in directory.iterdir()
        if path.is_file() and path.name != "__init__.py" and path.suffix in {".py", ".pyi"}
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stubs")
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "gen_stubs.sh"), str(out)],
        env={**os.environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"gen_stubs.sh failed:\n{result.stdout}\n{result.stderr}"
    return out / "oip" / "v1"


def test_generated_file_set_matches(generated: Path) -> None:
    made = _files(generated)
    assert made, f"gen_stubs.sh wrote no stubs under {generated}"
    assert made == _files(CHECKED_IN), HINT
    assert (CHECKED_IN / "__init__.py").is_file()


def test_generated_files_are_byte_identical(generated: Path) -> None:
    stale = sorted(
        name for name in _files(generated) if (generated / name).read_bytes() != (CHECKED_IN / name).read_bytes()
    )
    assert not stale, f"{', '.join(stale)} differ from protoc's output: {HINT}"
