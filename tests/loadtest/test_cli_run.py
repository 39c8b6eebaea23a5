"""The harness end to end against our real server: reports, counts checked against ModelStatistics, errors."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from loadtest.cli import main
from loadtest.target import Target
from tests.conftest import EXAMPLE_MODELS
from tests.loadtest.conftest import needs_h2load
from tests.support.servers import ThreadedServer

QUICK = ["--warmup", "0.3", "--window", "0.5", "--windows", "2", "--processes", "2", "--no-plots"]


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    shutil.copytree(EXAMPLE_MODELS / "fraud", tmp_path / "models" / "fraud")
    return tmp_path / "models"


@pytest.fixture
def server(repository: Path) -> Iterator[ThreadedServer]:
    with ThreadedServer(repository) as running:
        yield running


def successes(server: ThreadedServer, model: str = "fraud") -> int:
    with Target(server.address) as target:
        stats = target.statistics(model)
    assert stats is not None
    return stats.success_count


def test_closed_loop_with_baselines(server: ThreadedServer, repository: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "report"
    args = ["--target", server.address, "--model", "fraud", "--concurrency", "2,4", "--baseline"]
    code = main([*args, "--model-repository", str(repository), "--output-dir", str(out), *QUICK[:-1]])
    assert code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["model"] == "fraud" and report["target"] == server.address
    assert report["command"].startswith("python -m loadtest --target")
    assert report["machine"]["cores"] >= 1 and report["started_at"]
    assert report["versions"]["target_server"].startswith("oip-inference-server")
    assert [level["level"] for level in report["levels"]] == [2.0, 4.0]
    for level in report["levels"]:
        assert level["requests_ok"] > 0 and level["requests_failed"] == 0 and level["errors_by_code"] == {}
        latency = level["latency"]
        assert (
            0 < latency["p50_ms"] <= latency["p90_ms"] <= latency["p99_ms"] <= latency["p999_ms"] <= latency["max_ms"]
        )
        assert len(level["windows"]) == 2
        assert level["throughput_infer_per_s"] == pytest.approx(level["requests_ok"] / level["duration_s"])
        # The server saw what the client counted in the same window, give or take requests in flight at its edges.
        assert abs(level["server"]["success_count"] - level["requests_ok"]) <= 2 * level["level"] + 2
        assert level["server"]["avg_compute_infer_us"] > 0
    # Exactly: every success the client counted is one the server counted (plus the one probe request).
    assert successes(server) == 1 + sum(level["total_ok"] for level in report["levels"])
    baselines = {baseline["name"]: baseline for baseline in report["baselines"]}
    assert [level["level"] for level in baselines["grpc_floor"]["levels"]] == [2.0, 4.0]
    assert set(baselines["onnxruntime"]["throughput_infer_per_s_by_batch"]) == {"1", "64"}
    assert {"target/grpc_floor@c2", "target/grpc_floor@c4", "target_best/onnxruntime@batch1"} <= set(report["ratios"])
    assert (out / "report.md").read_text().count("| 2 |") >= 1
    printed = capsys.readouterr().out
    assert "target/grpc_floor@c4" in printed and "report.json" in printed


def test_open_loop_poisson(server: ThreadedServer, tmp_path: Path) -> None:
    out = tmp_path / "open"
    args = ["--target", server.address, "--model", "fraud", "--rate", "100", "--arrival", "poisson"]
    assert main([*args, "--output-dir", str(out), *QUICK]) == 0
    (level,) = json.loads((out / "report.json").read_text())["levels"]
    assert level["mode"] == "open" and level["level"] == 100.0
    assert 50 <= level["requests_ok"] <= 150  # ~100 req/s for 1 s of Poisson arrivals
    assert level["latency"]["p99_ms"] > 0
    assert successes(server) == 1 + level["total_ok"]


def test_compare_prints_ratios(server: ThreadedServer, tmp_path: Path, capsys) -> None:
    for name in ("a", "b"):
        args = ["--target", server.address, "--model", "fraud", "--concurrency", "2"]
        assert main([*args, "--output-dir", str(tmp_path / name), *QUICK]) == 0
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "a" / "report.json"), str(tmp_path / "b" / "report.json")]) == 0
    assert "closed" in capsys.readouterr().out


@needs_h2load
def test_h2load_engine_counts_only_server_successes(server: ThreadedServer, tmp_path: Path) -> None:
    out = tmp_path / "h2"
    args = ["--target", server.address, "--model", "fraud", "--concurrency", "4", "--engine", "h2load"]
    before = successes(server)
    assert main([*args, "--output-dir", str(out), *QUICK]) == 0
    (level,) = json.loads((out / "report.json").read_text())["levels"]
    assert level["engine"] == "h2load" and level["requests_ok"] > 0
    assert level["requests_ok"] == level["server"]["success_count"]
    assert successes(server) > before + level["requests_ok"]  # warm-up and the probe request come on top


@needs_h2load
def test_h2load_engine_sends_streams_of_messages(server: ThreadedServer, tmp_path: Path) -> None:
    out = tmp_path / "h2-stream"
    args = ["--target", server.address, "--model", "fraud", "--concurrency", "2", "--engine", "h2load"]
    before = successes(server)
    assert main([*args, "--stream-messages", "8", "--output-dir", str(out), *QUICK]) == 0
    (level,) = json.loads((out / "report.json").read_text())["levels"]
    assert level["requests_ok"] > 0 and level["requests_ok"] == level["server"]["success_count"]
    assert successes(server) > before + level["requests_ok"]
    assert any("16 messages in flight" in note for note in level["notes"])


@needs_h2load
def test_h2load_baseline_loads_the_floor_with_h2load_too(server: ThreadedServer, tmp_path: Path) -> None:
    out = tmp_path / "h2-floor"
    args = ["--target", server.address, "--model", "fraud", "--concurrency", "4", "--engine", "h2load", "--baseline"]
    assert main([*args, "--output-dir", str(out), *QUICK]) == 0
    report = json.loads((out / "report.json").read_text())
    (floor_level,) = {b["name"]: b for b in report["baselines"]}["grpc_floor"]["levels"]
    assert floor_level["engine"] == "h2load" and floor_level["requests_ok"] > 0
    assert report["ratios"]["target/grpc_floor@c4"] > 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "nope"], "NOT_FOUND"),
        (["--model", "fraud", "--concurrency", "0"], "--concurrency"),
        (["--model", "fraud", "--concurrency", "1.5"], "whole numbers"),
        (["--model", "fraud", "--rate", "fast"], "--rate"),
        (["--model", "fraud", "--batch", "65"], "max_batch_size 64"),
        (["--model", "fraud", "--shape", "features"], "--shape"),
        (["--model", "fraud", "--window", "100", "--windows", "100"], "600"),
        (["--model", "fraud", "--input-data", "/does/not/exist.npz"], "does not exist"),
        (["--model", "fraud", "--stream-messages", "8"], "--engine h2load"),
        (["--model", "fraud", "--engine", "h2load", "--stream-messages", "2000"], "between 0 and 1024"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(server: ThreadedServer, extra: list[str], message: str, capsys) -> None:
    assert main(["--target", server.address, *QUICK, *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("loadtest: error:") and message in err[0], err


@pytest.mark.parametrize(
    "args",
    [
        ["--target", f"127.0.0.1:{closed_port()}", "--model", "fraud"],
        ["--target", "not a target", "--model", "fraud"],
        ["--model", "fraud"],
    ],
    ids=["unreachable", "malformed-target", "missing-target"],
)
def test_cli_errors_never_print_a_traceback(args: list[str]) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "loadtest", *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr
    assert completed.stderr.strip(), "an error message is expected"
