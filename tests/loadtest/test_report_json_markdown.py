"""JSON round trip and the Markdown report."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.errors import LoadTestError
from loadtest.report.json_report import read_json, write_json
from loadtest.report.markdown import render_markdown, write_markdown
from loadtest.results import (
    BaselineResult,
    LatencySummary,
    LevelResult,
    RunReport,
    ServerBreakdown,
    WindowResult,
)


def make_level(mode: str, level: float, infer_per_s: float, p50: float = 2.0, *, latency: bool = True) -> LevelResult:
    return LevelResult(
        mode=mode,
        level=level,
        engine="python",
        batch_size=4,
        duration_s=10.0,
        requests_ok=1000,
        requests_failed=3,
        errors_by_code={"UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1},
        throughput_req_per_s=infer_per_s / 4,
        throughput_infer_per_s=infer_per_s,
        latency=LatencySummary(1000, p50 * 1.1, p50, p50 * 2, p50 * 2.5, p50 * 3, p50 * 5, p50 * 9)
        if latency
        else None,
        windows=[WindowResult(5.0, 500, 1, infer_per_s, p50, p50 * 3)],
        stable=level < 64,
        server=ServerBreakdown(1000, 3, 250, 4000, 900.0, 123.4, 10.0, 500.0, 20.0),
        notes=["saturated"] if level >= 64 else [],
    )


def make_report() -> RunReport:
    return RunReport(
        target="127.0.0.1:8001",
        model="resnet_tiny",
        version="1",
        command="python -m loadtest --model resnet_tiny --concurrency 1,8,64",
        started_at="2025-01-02T03:04:05Z",
        machine={"cpu": "AMD EPYC 7B13", "cores": 16, "memory": "64 GiB", "os": "Linux 6.1", "python": "3.11.9"},
        versions={"grpcio": "1.85.1", "onnxruntime": "1.20.0"},
        settings={"batch_size": 4, "duration_s": 10.0},
        levels=[make_level("closed", c, 1000.0 * c**0.5) for c in (1, 8, 64)] + [make_level("open", 500, 1999.5)],
        baselines=[
            BaselineResult("grpc_floor", "bare grpc.aio servicer", [make_level("closed", 8, 9000.0)]),
            BaselineResult("onnxruntime", "in-process ceiling", [], {1: 3000.0, 4: 12000.0}),
        ],
        ratios={"target/grpc_floor@c8": 0.314, "target/onnxruntime@b4": 0.667},
    )


def test_json_round_trip(tmp_path: Path) -> None:
    report = make_report()
    path = tmp_path / "out" / "report.json"
    write_json(report, path)
    assert path.read_text().startswith('{\n  "target"')
    assert read_json(path) == report


@pytest.mark.parametrize("content", [None, "{not json", "[1, 2]", '{"target": "x"}', "\xff\xfe"])
def test_read_json_rejects_broken_files(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "report.json"
    if content is not None:
        path.write_bytes(content.encode("latin-1"))
    with pytest.raises(LoadTestError) as info:
        read_json(path)
    assert "\n" not in str(info.value)
    assert str(path) in str(info.value)


def test_markdown_has_facts_numbers_and_images(tmp_path: Path) -> None:
    report = make_report()
    text = render_markdown(report, ("throughput_vs_concurrency.png", "latency_vs_throughput.png"))
    assert text.startswith("# Load test: resnet_tiny on 127.0.0.1:8001")
    assert "2025-01-02T03:04:05Z" in text
    assert "```\npython -m loadtest --model resnet_tiny --concurrency 1,8,64\n```" in text
    for fact in ("AMD EPYC 7B13", "16", "64 GiB", "Linux 6.1", "3.11.9", "1.85.1", "batch_size"):
        assert fact in text
    assert "### Closed loop (concurrency)" in text
    assert "### Open loop" in text
    # closed c=8: 2828.4 infer/s, 707.1 req/s; p50 2.00 p90 4.00 p95 5.00 p99 6.00 p99.9 10.00 mean 2.20
    assert (
        "| 8 | 2,828.4 | 707.1 | 2.00 | 4.00 | 5.00 | 6.00 | 10.00 | 2.20 | UNAVAILABLE=2, DEADLINE_EXCEEDED=1 |"
        in text
    )
    assert "| yes | 123.4 | 530.0 |" in text
    assert "| 64 | 8,000.0 |" in text
    assert "| no |" in text
    assert "- 64: saturated" in text
    assert "### grpc_floor" in text
    assert "| 8 | 9,000.0 |" in text
    assert "| 4 | 12,000.0 |" in text
    assert "| `target/grpc_floor@c8` | 0.314 |" in text
    assert "![throughput vs concurrency](throughput_vs_concurrency.png)" in text
    assert "![latency vs throughput](latency_vs_throughput.png)" in text

    path = tmp_path / "report.md"
    write_markdown(report, path, ["a.png"])
    assert "![a](a.png)" in path.read_text()


def test_markdown_explains_the_ratios_and_missing_plots() -> None:
    text = render_markdown(make_report(), (), plots_note="plots skipped: matplotlib is not installed")
    assert "- `target/grpc_floor@cN` = our requests/s divided by the bare grpc.aio server's" in text
    assert text.endswith("## Plots\n\nplots skipped: matplotlib is not installed\n")


def test_markdown_of_an_empty_run() -> None:
    report = make_report()
    report.levels, report.baselines, report.ratios = [], [], {}
    text = render_markdown(report)
    assert "No levels were measured." in text
    assert "## Plots" not in text
    assert "## Ratios" not in text
    assert "## Baselines" not in text
