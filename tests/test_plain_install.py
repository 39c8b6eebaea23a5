"""A plain `pip install .` (no extras, as `make run` and the Docker image install it) runs the load tester.

The runtime install has no matplotlib (it is in the `loadtest` and `dev` extras): the load test must still
measure, write report.json and report.md, and skip only the plots, with one line saying how to get them.
This builds a real virtual environment (pinned by constraints.txt; pip's cache makes it quick after `make test`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.support.process import ServerProcess

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_load_tester_runs_from_a_plain_install(tmp_path: Path) -> None:
    environment = tmp_path / "plain"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    if install.returncode != 0 and "No matching distribution" in install.stderr:
        pytest.skip(f"the package index is not reachable: {install.stderr[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    assert subprocess.run([str(python), "-c", "import matplotlib"], capture_output=True, check=False).returncode != 0
    with ServerProcess(ROOT / "models") as server:
        run = subprocess.run(
            [str(environment / "bin" / "oip-loadtest"), "--target", server.address, "--model", "fraud",
             "--concurrency", "2", "--warmup", "0.5", "--window", "1", "--windows", "1",
             "--output-dir", str(tmp_path / "report")],
            cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    assert "plots skipped" in run.stdout + run.stderr
    report = json.loads((tmp_path / "report" / "report.json").read_text())
    assert report["levels"] and report["levels"][0]["requests_ok"] > 0
    assert (tmp_path / "report" / "report.md").is_file()
    assert sys.executable not in str(python)  # a separate environment, not the dev one
