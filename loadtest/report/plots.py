"""PNG plots of a run: throughput against concurrency, and latency against throughput.

matplotlib is an optional extra (`pip install '.[loadtest]'`), imported only when drawing, through the Agg canvas
of a standalone `Figure`: importing this module is cheap, works without matplotlib, and never touches pyplot's
global state. `plots_unavailable()` says beforehand whether plots can be drawn.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loadtest.report.formatting import format_level, format_number
from loadtest.results import BaselineResult, LevelResult, RunReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

INSTALL_HINT = "pip install '.[loadtest]'"
DPI = 110
FIG_SIZE = (8.0, 5.0)
PERCENTILES = (("p50", "p50_ms", "tab:blue"), ("p90", "p90_ms", "tab:orange"), ("p99", "p99_ms", "tab:red"))
MODE_STYLES = {"closed": ("-", "o"), "open": ("--", "s")}
#: Point labels on the latency plot: c = requests in flight (closed loop), r = offered requests/s (open loop).
LEVEL_PREFIX = {"closed": "c=", "open": "r="}
#: A ceiling up to this many times the highest measured throughput shares the axes with it; above, the axis breaks.
SAME_AXES_CEILING = 1.5


def plots_unavailable() -> str | None:
    """Why the plots cannot be drawn here (one line, with the fix), or None when they can."""
    try:
        importlib.import_module("matplotlib")
    except ImportError as error:
        missing = isinstance(error, ModuleNotFoundError) and error.name == "matplotlib"
        reason = "matplotlib is not installed" if missing else f"matplotlib cannot be imported ({error})"
        return f"plots skipped: {reason}; `{INSTALL_HINT}` adds them"
    return None


def write_plots(report: RunReport, out_dir: Path) -> list[Path]:
    """Write the plots that have data into `out_dir`; return their paths (possibly none)."""
    written = []
    for name, draw in (
        ("throughput_vs_concurrency.png", throughput_figure),
        ("latency_vs_throughput.png", latency_figure),
    ):
        figure = draw(report)
        if figure is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        _save(figure, path)
        written.append(path)
    return written


def _new_figure(panels: int = 1) -> tuple[Figure, list[Axes]]:
    from matplotlib.figure import Figure  # noqa: PLC0415 - keep matplotlib out of import time

    figure = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
    if panels == 1:
        axes = [figure.add_subplot()]
    else:
        axes = list(figure.subplots(panels, 1, sharex=True, height_ratios=[1, 4]))
    for each in axes:
        each.grid(True, which="major", alpha=0.3)
    return figure, axes


def _save(figure: Figure, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: PLC0415

    FigureCanvasAgg(figure).print_png(str(path))  # type: ignore[no-untyped-call]


def _closed(levels: Sequence[LevelResult]) -> list[LevelResult]:
    return sorted((level for level in levels if level.mode == "closed"), key=lambda level: level.level)


def _ceiling(baselines: Sequence[BaselineResult], batch_size: object) -> tuple[str, int, float] | None:
    """(baseline name, batch size, infer/s) of the first compute ceiling, at the run's batch size if measured."""
    for baseline in baselines:
        by_batch = baseline.throughput_infer_per_s_by_batch
        if by_batch:
            size = batch_size if isinstance(batch_size, int) and batch_size in by_batch else max(by_batch)
            return baseline.name, size, by_batch[size]
    return None


def throughput_figure(report: RunReport) -> Figure | None:
    """Inferences/s against concurrency for the target and the floor, with the compute ceiling; None without data."""
    series: list[tuple[str, list[LevelResult]]] = [("target", _closed(report.levels))]
    series += [(baseline.name, _closed(baseline.levels)) for baseline in report.baselines]
    series = [(name, levels) for name, levels in series if levels]
    if not series:
        return None
    top = max(lv.throughput_infer_per_s for _, levels in series for lv in levels)
    ceiling = _ceiling(report.baselines, report.settings.get("batch_size"))
    # In-process ONNX Runtime has no gRPC at all, so its ceiling is often 10-100x what any server achieves; on
    # one linear axis it squashes the target and the floor, whose gap is what this plot is for, into the bottom.
    # A log scale would keep them apart but shrink a 2x gap to a few millimetres, and a second y-axis makes a
    # line on another scale look comparable. A broken axis keeps both panels linear: the lower one compares
    # target and floor at full height, the narrow upper one shows where the ceiling is, the break marks say so.
    broken = ceiling is not None and ceiling[2] > SAME_AXES_CEILING * top
    figure, panels = _new_figure(2 if broken else 1)
    axes = panels[-1]
    for name, levels in series:
        label = f"{name} ({report.target})" if name == "target" else name
        axes.plot([lv.level for lv in levels], [lv.throughput_infer_per_s for lv in levels], marker="o", label=label)
    if ceiling is not None:
        name, size, value = ceiling
        label = f"{name} ceiling (batch {size}): {format_number(value, 0)} infer/s"
        if broken:
            best = max((lv.throughput_infer_per_s for lv in report.levels), default=0.0)
            _ceiling_panel(panels[0], axes, value, label, best)
        else:
            axes.axhline(value, linestyle="--", color="gray", label=label)
    from matplotlib.ticker import StrMethodFormatter  # noqa: PLC0415

    for each in panels:
        each.yaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    _concurrency_axis(axes, sorted({lv.level for _, levels in series for lv in levels}))
    axes.set_ylim(0, top * 1.15)
    if not broken and ceiling is not None:
        axes.set_ylim(0, max(top, ceiling[2]) * 1.1)
    axes.set_xlabel("concurrency (requests in flight)", fontsize=11)
    axes.set_ylabel("inferences/s", fontsize=11)
    panels[0].set_title(f"{report.model}: throughput vs concurrency", fontsize=13)
    axes.legend(fontsize=9, loc="lower right")
    return figure


def _ceiling_panel(upper: Axes, lower: Axes, value: float, label: str, best: float) -> None:
    """The ceiling alone in `upper`, above a break in the y-axis of `lower`."""
    upper.axhline(value, linestyle="--", color="gray")
    upper.set_ylim(value * 0.8, value * 1.2)
    upper.text(
        0.01, 0.62, f"{label}; best target = {100 * best / value:.1f} % of it",
        transform=upper.transAxes, fontsize=9, color="dimgray",
    )  # fmt: skip
    upper.spines.bottom.set_visible(False)
    lower.spines.top.set_visible(False)
    upper.tick_params(bottom=False, labelbottom=False)
    # The usual break marks: short diagonals where the two panels' y-axes end.
    for axes, y in ((upper, 0), (lower, 1)):
        axes.plot(
            [0, 1], [y, y], transform=axes.transAxes, marker=[(-1, -0.5), (1, 0.5)], markersize=10,
            linestyle="none", color="k", clip_on=False,
        )  # fmt: skip


def _concurrency_axis(axes: Axes, concurrencies: list[float]) -> None:
    if concurrencies[0] > 0 and concurrencies[-1] / concurrencies[0] > 8:
        from matplotlib.ticker import FixedLocator, ScalarFormatter  # noqa: PLC0415

        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_locator(FixedLocator(concurrencies))
        axes.xaxis.set_major_formatter(ScalarFormatter())


def latency_figure(report: RunReport) -> Figure | None:
    """p50/p90/p99 latency against achieved inferences/s, each level labelled; None without latencies."""
    measured = [level for level in report.levels if level.latency is not None]
    if not measured:
        return None
    figure, (axes,) = _new_figure()
    modes = sorted({level.mode for level in measured})
    for mode in modes:
        in_mode = sorted((lv for lv in measured if lv.mode == mode), key=lambda lv: lv.level)
        linestyle, marker = MODE_STYLES.get(mode, (":", "^"))
        x = [lv.throughput_infer_per_s for lv in in_mode]
        for name, attr, color in PERCENTILES:
            y = [getattr(lv.latency, attr) for lv in in_mode]
            label = f"{name} ({mode} loop)" if len(modes) > 1 else name
            axes.plot(x, y, linestyle=linestyle, marker=marker, color=color, label=label)
        # One label per level at its p99 point (the three points of a level share its x), up and to the left:
        # the line arrives from the lower left and leaves to the upper right, so that corner is the clear one.
        for level, throughput in zip(in_mode, x, strict=True):
            assert level.latency is not None
            axes.annotate(
                LEVEL_PREFIX.get(mode, "") + format_level(level.level), (throughput, level.latency.p99_ms),
                textcoords="offset points", xytext=(-4, 4), ha="right", va="bottom", fontsize=8,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.8},
            )  # fmt: skip
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0, top=axes.get_ylim()[1] * 1.08)  # room for the labels above the highest points
    axes.set_xlabel("achieved inferences/s", fontsize=11)
    axes.set_ylabel("latency (ms)", fontsize=11)
    kinds = " / ".join(
        text for mode, text in (("closed", "c = requests in flight"), ("open", "r = offered req/s")) if mode in modes
    )
    axes.set_title(f"{report.model}: latency vs throughput (points labelled {kinds})", fontsize=12)
    axes.legend(fontsize=9)
    return figure
