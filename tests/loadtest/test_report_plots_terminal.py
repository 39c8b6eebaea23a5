"""PNG plots, the summary table and the progress line."""

from __future__ import annotations

import io
from pathlib import Path

from loadtest.report.plots import write_plots
from loadtest.report.terminal import Progress, format_table
from tests.loadtest.test_report_json_markdown import make_level, make_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plots_are_valid_pngs(tmp_path: Path) -> None:
    paths = write_plots(make_report(), tmp_path / "plots")
    assert [path.name for path in paths] == ["throughput_vs_concurrency.png", "latency_vs_throughput.png"]
    for path in paths:
        data = path.read_bytes()
        assert data.startswith(PNG_SIGNATURE)
        assert len(data) > 10_000


def test_plots_without_data_write_nothing(tmp_path: Path) -> None:
    report = make_report()
    report.levels, report.baselines = [], []
    assert write_plots(report, tmp_path / "plots") == []
    assert not (tmp_path / "plots").exists()


def test_open_loop_only_gives_only_the_latency_plot(tmp_path: Path) -> None:
    report = make_report()
    report.levels = [make_level("open", 100, 400.0), make_level("closed", 4, 900.0, latency=False)]
    report.baselines = []
    assert [path.name for path in write_plots(report, tmp_path)] == [
        "throughput_vs_concurrency.png",
        "latency_vs_throughput.png",
    ]
    report.levels = [make_level("open", 100, 400.0)]
    assert [path.name for path in write_plots(report, tmp_path / "b")] == ["latency_vs_throughput.png"]


def test_format_table() -> None:
    levels = [make_level("open", 500, 1999.5), make_level("closed", 64, 8000.0), make_level("closed", 1, 1000.0)]
    levels.append(make_level("closed", 2, 50.0, latency=False))
    levels[-1].errors_by_code = {}
    lines = format_table(levels).splitlines()
    header = ["mode", "level", "infer/s", "p50", "ms", "p90", "ms", "p99", "ms", "p99.9", "ms", "errors", "stable"]
    assert lines[0].split() == header
    assert set(lines[1]) == {"-", " "}
    assert len(lines) == 2 + 4
    assert [line.split()[:2] for line in lines[2:]] == [
        ["closed", "1"],
        ["closed", "2"],
        ["closed", "64"],
        ["open", "500"],
    ]
    first = ["closed", "1", "1,000.0", "2.00", "4.00", "6.00", "10.00", "UNAVAILABLE=2,", "DEADLINE_EXCEEDED=1", "yes"]
    assert lines[2].split() == first
    assert lines[3].split() == ["closed", "2", "50.0", "-", "-", "-", "-", "3", "yes"]
    assert lines[4].endswith(" no")
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule are the same width


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_on_a_plain_stream_prints_rate_limited_lines() -> None:
    stream, clock = io.StringIO(), FakeClock()
    progress = Progress(stream, plain_interval_s=10.0, clock=clock)
    progress.update("closed 8", "warm-up", 0.0, 12.0, 0, 0)
    clock.now = 1.0
    progress.update("closed 8", "warm-up", 1.0, 12.0, 10, 0)  # suppressed: same phase, too soon
    clock.now = 2.0
    progress.update("closed 8", "measure", 2.0, 12.0, 20, 1)  # phase change: printed
    clock.now = 12.5
    progress.update("closed 8", "measure", 12.0, 12.0, 120, 1)  # interval passed: printed
    progress.done("closed 8", "2,828 infer/s")
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert len(lines) == 4
    assert lines[0].startswith("closed 8 warm-up")
    assert "20 ok" in lines[1]
    assert "1 err" in lines[1]
    assert "12.0/12s" in lines[2]
    assert lines[3] == "closed 8: 2,828 infer/s"


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_tty_rewrites_one_line() -> None:
    stream, clock = FakeTty(), FakeClock()
    progress = Progress(stream, tty_interval_s=0.2, clock=clock)
    progress.update("open 100", "measure", 1.0, 10.0, 5, 0)
    clock.now = 0.1
    progress.update("open 100", "measure", 1.1, 10.0, 6, 0)  # suppressed
    clock.now = 0.5
    progress.update("open 100", "measure", 5.0, 10.0, 50, 0)
    progress.done("open 100", "ok")
    out = stream.getvalue()
    assert out.count("\r") == 3
    assert out.count("\n") == 1
    assert out.endswith("\ropen 100: ok" + " " * (len(out.split("\r")[2]) - len("open 100: ok")) + "\n")


def test_progress_survives_a_closed_stream() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    stream.close()
    progress.update("closed 1", "measure", 1.0, 2.0, 1, 0)
    progress.done("closed 1", "done")
