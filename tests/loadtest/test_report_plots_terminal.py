"""PNG plots, the summary table and the progress line."""

from __future__ import annotations

import io
from pathlib import Path

from loadtest.report.plots import latency_figure, throughput_figure, write_plots
from loadtest.report.terminal import Progress, format_ratios, format_table
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


def test_a_far_ceiling_gets_its_own_panel_above_a_broken_axis() -> None:
    report = make_report()  # target up to 8,000 infer/s, floor 9,000; ceiling 12,000 at the run's batch size 4
    figure = throughput_figure(report)
    assert figure is not None and len(figure.axes) == 1  # close enough: one axis, the ceiling a dashed line on it
    (axes,) = figure.axes
    assert axes.get_ylim()[1] >= 12_000
    assert "onnxruntime ceiling (batch 4): 12,000 infer/s" in axes.get_legend_handles_labels()[1]

    report.baselines[1].throughput_infer_per_s_by_batch = {1: 30_000.0, 4: 250_000.0}
    figure = throughput_figure(report)
    assert figure is not None
    upper, lower = figure.axes
    assert upper.get_ylim()[0] < 250_000 < upper.get_ylim()[1]
    assert lower.get_ylim()[1] < 12_000  # the target and floor keep the whole lower panel
    (label,) = [text.get_text() for text in upper.texts]
    assert label == "onnxruntime ceiling (batch 4): 250,000 infer/s; best target = 3.2 % of it"
    assert lower.get_legend_handles_labels()[1] == ["target (127.0.0.1:8001)", "grpc_floor"]


def test_every_latency_point_is_labelled_with_its_level() -> None:
    figure = latency_figure(make_report())
    assert figure is not None
    (axes,) = figure.axes
    labels = {text.get_text(): text.xy for text in axes.texts}  # type: ignore[attr-defined]
    assert set(labels) == {"c=1", "c=8", "c=64", "r=500"}
    assert labels["c=8"] == (1000.0 * 8**0.5, 6.0)  # at the level's p99 point
    assert "c = requests in flight" in axes.get_title() and "r = offered req/s" in axes.get_title()


def test_ratios_print_with_a_legend() -> None:
    text = format_ratios(
        {"target/grpc_floor@c8": 0.31415, "target/grpc_floor@c64": 0.5, "target_best/onnxruntime@batch4": 0.02}
    )
    assert text.splitlines() == [
        "target/grpc_floor@c8: 0.314",
        "target/grpc_floor@c64: 0.5",
        "target_best/onnxruntime@batch4: 0.02",
        "legend: target/grpc_floor@cN = our requests/s divided by the bare grpc.aio server's (Python gRPC floor)"
        " at concurrency N",
        "legend: target_best/onnxruntime@batchB = our best inferences/s divided by in-process ONNX Runtime's"
        " (compute ceiling, no gRPC) at batch size B",
    ]
    assert format_ratios({"target/grpc_floor@r500": 1.2}).splitlines()[1].endswith("at offered rate N req/s")
    assert format_ratios({}) == ""


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
