"""PNG plots of a run: throughput against concurrency, and latency against throughput.

matplotlib is imported inside `write_plots` and drawn through the Agg canvas of a standalone `Figure`,
so importing this module is cheap and pyplot's global state is never touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from loadtest.results import BaselineResult, LevelResult, RunReport

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DPI = 110
FIG_SIZE = (8.0, 5.0)
PERCENTILES = (("p50", "p50_ms", "tab:blue"), ("p90", "p90_ms", "tab:orange"), ("p99", "p99_ms", "tab:red"))
MODE_STYLES = {"closed": ("-", "o"), "open": ("--", "s")}


def write_plots(report: RunReport, out_dir: Path) -> list[Path]:
    """Write the plots that have data into `out_dir`; return their paths (possibly none)."""
    written = []
    for name, draw in (
        ("throughput_vs_concurrency.png", _throughput_vs_concurrency),
        ("latency_vs_throughput.png", _latency_vs_throughput),
    ):
        figure = draw(report)
        if figure is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / name
        _save(figure, path)
        written.append(path)
    return written


def _new_figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure  # noqa: PLC0415 - keep matplotlib out of import time

    figure = Figure(figsize=FIG_SIZE, dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    axes.grid(True, which="major", alpha=0.3)
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


def _throughput_vs_concurrency(report: RunReport) -> Figure | None:
    series: list[tuple[str, list[LevelResult]]] = [("target", _closed(report.levels))]
    series += [(baseline.name, _closed(baseline.levels)) for baseline in report.baselines]
    series = [(name, levels) for name, levels in series if levels]
    if not series:
        return None
    figure, axes = _new_figure()
    for name, levels in series:
        label = f"{name} ({report.target})" if name == "target" else name
        axes.plot([lv.level for lv in levels], [lv.throughput_infer_per_s for lv in levels], marker="o", label=label)
    ceiling = _ceiling(report.baselines, report.settings.get("batch_size"))
    if ceiling is not None:
        name, size, value = ceiling
        axes.axhline(value, linestyle="--", color="gray", label=f"{name} ceiling (batch {size})")
    concurrencies = sorted({lv.level for _, levels in series for lv in levels})
    if concurrencies[0] > 0 and concurrencies[-1] / concurrencies[0] > 8:
        from matplotlib.ticker import FixedLocator, ScalarFormatter  # noqa: PLC0415

        axes.set_xscale("log", base=2)
        axes.xaxis.set_major_locator(FixedLocator(concurrencies))
        axes.xaxis.set_major_formatter(ScalarFormatter())
    axes.set_ylim(bottom=0)
    axes.set_xlabel("concurrency (requests in flight)", fontsize=11)
    axes.set_ylabel("inferences/s", fontsize=11)
    axes.set_title(f"{report.model}: throughput vs concurrency", fontsize=13)
    axes.legend(fontsize=9)
    return figure


def _latency_vs_throughput(report: RunReport) -> Figure | None:
    measured = [level for level in report.levels if level.latency is not None]
    if not measured:
        return None
    figure, axes = _new_figure()
    modes = sorted({level.mode for level in measured})
    for mode in modes:
        in_mode = sorted((lv for lv in measured if lv.mode == mode), key=lambda lv: lv.level)
        linestyle, marker = MODE_STYLES.get(mode, (":", "^"))
        x = [lv.throughput_infer_per_s for lv in in_mode]
        for name, attr, color in PERCENTILES:
            y = [getattr(lv.latency, attr) for lv in in_mode]
            label = f"{name} ({mode} loop)" if len(modes) > 1 else name
            axes.plot(x, y, linestyle=linestyle, marker=marker, color=color, label=label)
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_xlabel("achieved inferences/s", fontsize=11)
    axes.set_ylabel("latency (ms)", fontsize=11)
    axes.set_title(f"{report.model}: latency vs throughput", fontsize=13)
    axes.legend(fontsize=9)
    return figure
