"""The Markdown report: what was measured, where, how, and the numbers, for a README or a PR."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.report.formatting import (
    format_errors,
    format_level,
    format_ms,
    format_number,
    ratio_legend,
    sorted_levels,
)
from loadtest.results import BaselineResult, LevelResult, RunReport

MACHINE_KEYS = ("cpu", "cores", "memory", "os", "python")
MODE_TITLES = {"closed": "Closed loop (concurrency)", "open": "Open loop (offered rate, req/s)"}
LEVEL_HEADERS = (
    "level",
    "infer/s",
    "req/s",
    "p50 ms",
    "p90 ms",
    "p95 ms",
    "p99 ms",
    "p99.9 ms",
    "mean ms",
    "errors",
    "stable",
    "server queue µs",
    "server compute µs",
)
_LATENCY_FIELDS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "p999_ms", "mean_ms")


def render_markdown(report: RunReport, plot_files: Sequence[str] = (), plots_note: str = "") -> str:
    """The whole report as one Markdown document; `plot_files` are image paths relative to the document.

    `plots_note` says why there are no plots (e.g. matplotlib is not installed), under the Plots heading.
    """
    sections = [
        _header(report),
        _machine(report.machine),
        "## Command\n\n```\n" + report.command + "\n```",
        "## Versions\n\n" + _bullets(report.versions.items()),
        "## Settings\n\n" + _bullets(report.settings.items()),
        *_results(report.levels),
        *_baselines(report.baselines),
        _ratios(report.ratios),
        _plots(plot_files, plots_note),
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


def write_markdown(report: RunReport, path: Path, plot_files: Sequence[str] = (), plots_note: str = "") -> None:
    """Write `render_markdown(report, plot_files, plots_note)` to `path`, creating the parent directory."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report, plot_files, plots_note), encoding="utf-8")


def _header(report: RunReport) -> str:
    return (
        f"# Load test: {report.model} on {report.target}\n\n"
        f"- model: `{report.model}` version `{report.version or 'default'}`\n"
        f"- target: `{report.target}`\n"
        f"- started: {report.started_at}"
    )


def _machine(machine: Mapping[str, Any]) -> str:
    ordered = [(key, machine[key]) for key in MACHINE_KEYS if key in machine]
    ordered += [(key, value) for key, value in machine.items() if key not in MACHINE_KEYS]
    return "## Machine\n\n" + _bullets(ordered)


def _bullets(items: Iterable[tuple[str, Any]]) -> str:
    lines = [f"- {key}: `{value}`" for key, value in items]
    return "\n".join(lines) if lines else "- (none recorded)"


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(" --- " for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _level_row(level: LevelResult) -> list[str]:
    lat, server = level.latency, level.server
    errors = format_errors(level.errors_by_code) if level.errors_by_code else str(level.requests_failed)
    compute = (
        server.avg_compute_input_us + server.avg_compute_infer_us + server.avg_compute_output_us if server else None
    )
    return [
        format_level(level.level),
        format_number(level.throughput_infer_per_s),
        format_number(level.throughput_req_per_s),
        *(format_ms(getattr(lat, name) if lat else None) for name in _LATENCY_FIELDS),
        errors,
        "yes" if level.stable else "no",
        format_number(server.avg_queue_us if server else None),
        format_number(compute),
    ]


def _level_tables(levels: Sequence[LevelResult], heading: str) -> list[str]:
    """One table per mode, each under `heading` followed by the mode's title."""
    ordered = sorted_levels(levels)
    modes = list(dict.fromkeys(level.mode for level in ordered))
    sections = []
    for mode in modes:
        in_mode = [level for level in ordered if level.mode == mode]
        title = MODE_TITLES.get(mode, mode)
        notes = [f"- {format_level(lv.level)}: {note}" for lv in in_mode for note in lv.notes]
        body = _table(LEVEL_HEADERS, (_level_row(level) for level in in_mode))
        engines = ", ".join(sorted({level.engine for level in in_mode}))
        sizes = ", ".join(str(size) for size in sorted({level.batch_size for level in in_mode}))
        text = f"{heading} {title}\n\nengine: {engines}; batch size: {sizes}\n\n{body}"
        sections.append(text + ("\n\nNotes:\n\n" + "\n".join(notes) if notes else ""))
    return sections


def _results(levels: Sequence[LevelResult]) -> list[str]:
    return ["## Results", *_level_tables(levels, "###")] if levels else ["## Results\n\nNo levels were measured."]


def _baselines(baselines: Sequence[BaselineResult]) -> list[str]:
    if not baselines:
        return []
    sections = ["## Baselines"]
    for baseline in baselines:
        sections.append(f"### {baseline.name}\n\n{baseline.description}")
        sections += _level_tables(baseline.levels, "####")
        by_batch = baseline.throughput_infer_per_s_by_batch
        if by_batch:
            rows = [(size, format_number(by_batch[size])) for size in sorted(by_batch)]
            sections.append(_table(("batch size", "infer/s"), rows))
    return sections


def _ratios(ratios: Mapping[str, float]) -> str:
    if not ratios:
        return ""
    table = _table(("ratio", "value"), ((f"`{k}`", f"{v:.3f}") for k, v in ratios.items()))
    legend = "\n".join(f"- `{key}` ={text}" for key, _, text in (line.partition(" =") for line in ratio_legend(ratios)))
    return "## Ratios\n\n" + table + ("\n\n" + legend if legend else "")


def _plots(plot_files: Sequence[str], note: str = "") -> str:
    if not plot_files:
        return f"## Plots\n\n{note}" if note else ""
    images = [f"![{Path(name).stem.replace('_', ' ')}]({name})" for name in plot_files]
    return "## Plots\n\n" + "\n\n".join(images)
