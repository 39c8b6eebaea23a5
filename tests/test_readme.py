"""The README's first-hour commands, run literally against a server started the way `make run` starts it.

Blocks marked `<!-- run by tests/test_readme.py -->` are extracted and run as written: bash blocks from the
repository root (they activate .venv themselves), Python blocks with the environment's Python.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent
MARK = "<!-- run by tests/test_readme.py -->"
BLOCK = re.compile(re.escape(MARK) + r"\n```(\w+)\n(.*?)\n```", re.DOTALL)


def marked_blocks() -> list[tuple[str, str]]:
    return [(language, body) for language, body in BLOCK.findall((ROOT / "README.md").read_text())]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.fixture(scope="module")
def make_run_server() -> Iterator[ServerProcess]:
    """The bundled models on 127.0.0.1:8001 (gRPC) and :8002 (metrics), as `make run` serves them."""
    if not (port_free(8001) and port_free(8002)):
        pytest.skip("ports 8001/8002 are taken: the README's commands use them")
    with ServerProcess(ROOT / "models", "--grpc-port", "8001", "--metrics-port", "8002") as server:
        yield server


def test_the_readme_marks_its_first_hour_blocks() -> None:
    languages = [language for language, _ in marked_blocks()]
    assert languages.count("bash") >= 1 and languages.count("python") >= 2, languages


@pytest.mark.parametrize("index", range(len(marked_blocks())))
def test_a_marked_readme_block_runs_as_written(make_run_server: ServerProcess, index: int, tmp_path: Path) -> None:
    language, body = marked_blocks()[index]
    env = {key: value for key, value in os.environ.items() if key not in ("VIRTUAL_ENV", "PYTHONPATH")}
    if language == "bash":
        if not (ROOT / ".venv" / "bin" / "activate").is_file():
            pytest.skip("no .venv in the checkout (make run or make test creates it)")
        if shutil.which("curl") is None:
            pytest.skip("curl is not installed")
        command = ["bash", "-euo", "pipefail", "-c", body]
        cwd = ROOT
    else:
        command = [sys.executable, "-c", body]
        cwd = tmp_path  # the installed packages, not the checkout's directory, must provide the imports
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, (
        f"{language} block {index} failed:\n{body}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
