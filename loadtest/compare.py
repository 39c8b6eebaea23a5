"""`python -m loadtest compare BASELINE.json CANDIDATE.json`: the same levels of two runs, side by side.

Every ratio column reads as a speed-up, so above 1.00 means the candidate (B) did better:
throughput B/A, latency A/B.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from loadtest.errors import LoadTestError
from loadtest.report.formatting import format_level, format_ms, format_number, format_ratio, text_table
from loadtest.report.json_report import read_json
from loadtest.results import LevelResult, RunReport

LEVEL_HEADERS = (
    "mode",
    "level",
    "infer/s A",
    "infer/s B",
    "B/A",
    "p50 A/B",
    "p99 ms A",
    "p99 ms B",
    "p99 A/B",
)

LevelKey = tuple[str, float]


def compare_reports(baseline: RunReport, candidate: RunReport) -> str:
    """A text comparison of `candidate` (B) against `baseline` (A): matched levels, ratios, and caveats."""
    a_levels, b_levels = _by_key(baseline.levels), _by_key(candidate.levels)
    common = sorted(a_levels.keys() & b_levels.keys(), key=lambda key: (key[0] != "closed", key))
    parts = [
        f"A: {_describe(baseline)}",
        f"B: {_describe(candidate)}",
        "",
        *_notes(baseline, candidate, a_levels, b_levels, common),
    ]
    if common:
        rows = [_level_row(key, a_levels[key], b_levels[key]) for key in common]
        parts += [text_table(LEVEL_HEADERS, rows), "ratios above 1.00: B did better (throughput B/A, latency A/B)", ""]
    if baseline.ratios or candidate.ratios:
        parts += [_ratios_table(baseline.ratios, candidate.ratios), ""]
    return "\n".join(parts).rstrip() + "\n"


def main_compare(paths: Sequence[Path]) -> int:
    """The `compare` subcommand: read two JSON reports, print the comparison, return the exit status."""
    if len(paths) != 2:
        raise LoadTestError(f"compare takes exactly two reports (BASELINE.json CANDIDATE.json), got {len(paths)}")
    baseline, candidate = (read_json(path) for path in paths)
    print(compare_reports(baseline, candidate), end="")
    return 0


def _by_key(levels: Sequence[LevelResult]) -> dict[LevelKey, LevelResult]:
    return {(level.mode, round(level.level, 6)): level for level in levels}


def _describe(report: RunReport) -> str:
    return f"{report.model} on {report.target}, batch {_batch_size(report)}, started {report.started_at}"


def _batch_size(report: RunReport) -> object:
    if "batch_size" in report.settings:
        return report.settings["batch_size"]
    sizes = sorted({level.batch_size for level in report.levels})
    return sizes[0] if len(sizes) == 1 else sizes or "?"


def _notes(
    baseline: RunReport,
    candidate: RunReport,
    a_levels: dict[LevelKey, LevelResult],
    b_levels: dict[LevelKey, LevelResult],
    common: Sequence[LevelKey],
) -> list[str]:
    notes = []
    if baseline.model != candidate.model:
        notes.append(f"note: different models ({baseline.model} vs {candidate.model})")
    if _batch_size(baseline) != _batch_size(candidate):
        notes.append(f"note: different batch sizes ({_batch_size(baseline)} vs {_batch_size(candidate)})")
    if not common:
        notes.append("note: no load level (mode, level) was measured in both runs")
    for side, mine, theirs in (("A", a_levels, b_levels), ("B", b_levels, a_levels)):
        only = sorted(mine.keys() - theirs.keys())
        if only:
            notes.append(f"note: only in {side}: " + ", ".join(f"{mode} {format_level(lv)}" for mode, lv in only))
    return [*notes, ""] if notes else []


def _level_row(key: LevelKey, a: LevelResult, b: LevelResult) -> list[str]:
    a_p50, b_p50 = (lv.latency.p50_ms if lv.latency else None for lv in (a, b))
    a_p99, b_p99 = (lv.latency.p99_ms if lv.latency else None for lv in (a, b))
    return [
        key[0],
        format_level(key[1]),
        format_number(a.throughput_infer_per_s),
        format_number(b.throughput_infer_per_s),
        format_ratio(b.throughput_infer_per_s, a.throughput_infer_per_s),
        format_ratio(a_p50, b_p50),
        format_ms(a_p99),
        format_ms(b_p99),
        format_ratio(a_p99, b_p99),
    ]


def _ratios_table(a: dict[str, float], b: dict[str, float]) -> str:
    names = list(dict.fromkeys([*a, *b]))
    rows = [
        [
            name,
            f"{a[name]:.3f}" if name in a else "-",
            f"{b[name]:.3f}" if name in b else "-",
            format_ratio(b.get(name), a.get(name)),
        ]
        for name in names
    ]
    return text_table(("ratio", "A", "B", "B/A"), rows)
