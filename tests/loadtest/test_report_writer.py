"""Writing the reports after a run: a plain install without matplotlib, and failures that must not lose report.json."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.cli import main
from loadtest.report import writer
from loadtest.report.json_report import read_json
from loadtest.report.plots import INSTALL_HINT, plots_unavailable
from loadtest.report.writer import write_reports
from loadtest.results import RunReport
from tests.conftest import EXAMPLE_MODELS
from tests.loadtest.test_report_json_markdown import make_report
from tests.support.servers import ThreadedServer

ROOT = Path(__file__).resolve().parents[2]
# Installed as sitecustomize.py, it makes every process of the run (the client processes too) see an install
# without matplotlib, as `pip install .` leaves it.
NO_MATPLOTLIB = """
import sys


class NoMatplotlib:
    def find_spec(self, name, path=None, target=None):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


sys.meta_path.insert(0, NoMatplotlib())
"""


@pytest.fixture
def fraud_repository(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE_MODELS / "fraud", tmp_path / "models" / "fraud")
    return tmp_path / "models"


@pytest.fixture
def fraud_server(fraud_repository: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(fraud_repository) as running:
        yield running


def without_matplotlib(tmp_path: Path) -> dict[str, str]:
    blocker = tmp_path / "no-matplotlib"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(NO_MATPLOTLIB)
    path = os.pathsep.join(p for p in (str(blocker), str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_a_plain_install_without_matplotlib_writes_every_report_but_the_plots(
    fraud_server: ThreadedServer, fraud_repository: Path, tmp_path: Path
) -> None:
    env = without_matplotlib(tmp_path)
    probe = [sys.executable, "-c", "import matplotlib"]
    check = subprocess.run(probe, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert check.returncode != 0 and "No module named 'matplotlib'" in check.stderr  # the blocker works
    out = tmp_path / "report"
    args = ["--target", fraud_server.address, "--model", "fraud", "--concurrency", "2", "--baseline"]
    timing = ["--warmup", "0.3", "--window", "0.5", "--windows", "2", "--processes", "1"]
    command = [sys.executable, "-m", "loadtest", *args, "--model-repository", str(fraud_repository), *timing]
    done = subprocess.run(
        [*command, "--output-dir", str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    skipped = [line for line in done.stderr.splitlines() if "plots skipped" in line]
    assert skipped == [f"loadtest: plots skipped: matplotlib is not installed; `{INSTALL_HINT}` adds them"]
    report = read_json(out / "report.json")
    assert [level.level for level in report.levels] == [2.0] and report.levels[0].requests_ok > 0
    assert {baseline.name for baseline in report.baselines} == {"grpc_floor", "onnxruntime"}
    assert "target/grpc_floor@c2" in report.ratios
    markdown = (out / "report.md").read_text()
    assert "## Results" in markdown and "## Ratios" in markdown
    assert f"## Plots\n\nplots skipped: matplotlib is not installed; `{INSTALL_HINT}` adds them" in markdown
    assert list(out.glob("*.png")) == []
    printed = done.stdout
    assert printed.startswith("mode") and "target/grpc_floor@c2:" in printed
    assert "legend: target/grpc_floor@cN = our requests/s divided by the bare grpc.aio server's" in printed
    assert f"reports: {out / 'report.json'}, {out / 'report.md'}" in printed


def test_plots_unavailable_says_how_to_get_them(monkeypatch: pytest.MonkeyPatch) -> None:
    assert plots_unavailable() is None  # the dev install has matplotlib
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an install without it looks like to `import`
    assert plots_unavailable() == f"plots skipped: matplotlib is not installed; `{INSTALL_HINT}` adds them"


def test_a_failing_plot_costs_one_line_and_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: object) -> list[Path]:
        raise RuntimeError("font cache is corrupt")

    monkeypatch.setattr(writer, "write_plots", broken)
    report, out, err = make_report(), io.StringIO(), io.StringIO()
    assert write_reports(report, tmp_path, out=out, err=err) is False
    failure = "loadtest: plotting failed (RuntimeError: font cache is corrupt); the results are in"
    assert err.getvalue().splitlines() == [f"{failure} {tmp_path / 'report.json'}"]
    assert read_json(tmp_path / "report.json") == report
    assert "## Results" in (tmp_path / "report.md").read_text()
    assert "target/grpc_floor@c8: 0.314" in out.getvalue()
    assert f"reports: {tmp_path / 'report.json'}, {tmp_path / 'report.md'}" in out.getvalue()


def test_every_report_and_the_plots_when_all_goes_well(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert write_reports(make_report(), tmp_path, out=out, err=err) is True
    assert err.getvalue() == ""
    assert sorted(path.name for path in tmp_path.iterdir()) == [
        "latency_vs_throughput.png",
        "report.json",
        "report.md",
        "throughput_vs_concurrency.png",
    ]
    assert "![latency vs throughput](latency_vs_throughput.png)" in (tmp_path / "report.md").read_text()


def test_an_unwritable_output_dir_falls_back_to_a_temporary_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    (tmp_path / "file").write_text("not a directory")
    report, out, err = make_report(), io.StringIO(), io.StringIO()
    assert write_reports(report, tmp_path / "file" / "out", plots=False, out=out, err=err) is True
    (fallback,) = (tmp_path / "tmp").glob("loadtest-*/report.json")
    (line,) = err.getvalue().splitlines()
    assert line.startswith(f"loadtest: cannot write {tmp_path / 'file' / 'out' / 'report.json'} (")
    assert line.endswith(f"wrote {fallback} instead")
    assert read_json(fallback) == report
    assert (fallback.parent / "report.md").exists()


def test_with_nowhere_to_write_the_results_go_to_stdout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_temp(*_: object, **__: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "mkdtemp", no_temp)
    (tmp_path / "file").write_text("not a directory")
    report, out, err = make_report(), io.StringIO(), io.StringIO()
    assert write_reports(report, tmp_path / "file", out=out, err=err) is False
    assert RunReport.from_dict(json.loads(out.getvalue())) == report
    (line,) = err.getvalue().splitlines()
    assert line.startswith("loadtest: cannot write report.json (") and line.endswith("the results follow on stdout")


def test_an_unusable_output_dir_is_refused_before_measuring(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a directory")
    # No server at this address: the check comes before anything is measured.
    assert main(["--target", "127.0.0.1:1", "--model", "m", "--output-dir", str(tmp_path / "file" / "out")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    output, file = tmp_path / "file" / "out", tmp_path / "file"
    assert line == f"loadtest: error: --output-dir {output}: {file} is not a writable directory"
