"""The performance targets (P1-P5) checked against one benchmark run: `python -m loadtest.targets DIR`.

DIR is what scripts/benchmarks.sh writes: one report.json per run directory plus p5-memory.json.
Prints a Markdown table of measured ratio vs target.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.errors import LoadTestError
from loadtest.report.json_report import read_json
from loadtest.results import LevelResult, RunReport


def _level(report: RunReport, mode: str, level: float) -> LevelResult:
    for result in report.levels:
        if result.mode == mode and result.level == level:
            return result
    raise LoadTestError(f"{report.command}: no {mode} level {level:g}")


def _row(name: str, workload: str, measured: float, target: str, met: bool) -> str:
    return f"| {name} | {workload} | {measured:.2f} | {target} | {'yes' if met else 'no'} |"


#: (run directory, how it was loaded): the h2load client leaves the cores to the server, ours also measures latency.
_CLIENTS = (("-h2load", "h2load client"), ("", "Python client"))


def _optional(path: Path) -> RunReport | None:
    return read_json(path) if path.exists() else None


def _throughput_rows(directory: Path) -> tuple[list[str], RunReport]:
    """P1 and P2 rows for every client that was run; also the report the batching on/off ratio uses."""
    rows: list[str] = []
    batched: RunReport | None = None
    for suffix, client in _CLIENTS:
        p1 = _optional(directory / f"p1-fraud{suffix}" / "report.json")
        if p1 is not None:
            ratio = p1.ratios.get("target/grpc_floor@c64", 0.0)
            workload = f"fraud, batch 1, 64 in flight, {client}: ours / bare grpc.aio floor"
            rows.append(_row("P1", workload, ratio, ">= 0.85", ratio >= 0.85))
        p2 = _optional(directory / f"p2-mlp{suffix}" / "report.json")
        if p2 is not None:
            ceiling = p2.ratios.get("target_best/onnxruntime@batch32", 0.0)
            workload = f"mlp, batch 1, 64 in flight, {client}: ours / in-process ORT at batch 32"
            rows.append(_row("P2", workload, ceiling, ">= 0.7", ceiling >= 0.7))
            batched = batched or p2
    if batched is None:
        raise LoadTestError(f"{directory}: no p2-mlp-h2load or p2-mlp run")
    return rows, batched


def summarize(directory: Path) -> str:
    rows = ["| target | workload | measured | goal | met |", "|---|---|---|---|---|"]
    throughput, batched_report = _throughput_rows(directory)
    rows += throughput
    p2_off = read_json(directory / "p2-mlp-nobatch" / "report.json")
    memory: dict[str, Any] = json.loads((directory / "p5-memory.json").read_text())
    batched = _level(batched_report, "closed", 64).throughput_infer_per_s
    unbatched = _level(p2_off, "closed", 64).throughput_infer_per_s
    off_ratio = batched / unbatched if unbatched else 0.0
    rows.append(_row("P2", "mlp, 64 in flight: batching on / batching off", off_ratio, ">= 3", off_ratio >= 3))
    for suffix, client in _CLIENTS:
        p3 = _optional(directory / f"p3-fraud-open{suffix}" / "report.json")
        if p3 is None:
            continue
        (open_level,) = p3.levels
        latency = open_level.latency
        p3_ratio = latency.p99_ms / latency.p50_ms if latency and latency.p50_ms else float("inf")
        workload = f"fraud, open loop {open_level.level:g} req/s (half of max), {client}: p99 / p50"
        rows.append(_row("P3", workload, p3_ratio, "<= 3", p3_ratio <= 3))
    instructions = directory / "p1-instructions.json"
    if instructions.exists():
        counts = json.loads(instructions.read_text())
        workload = (
            f"fraud, {counts['concurrency']} in flight: CPU instructions per request, floor "
            f"{counts['floor_instructions_per_request']:,} / ours {counts['ours_instructions_per_request']:,}"
        )
        ratio = counts["floor_over_ours"]
        rows.append(_row("P1", workload, ratio, ">= 0.85", ratio >= 0.85))
    p5_ratio = memory["rss_per_version_mb"] / memory["budget_mb"]
    workload = f"mlp ({memory['file_mb']} MB file): RSS per version {memory['rss_per_version_mb']} MB / budget"
    rows.append(_row("P5", workload, p5_ratio, "<= 1", bool(memory["within_budget"])))
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m loadtest.targets DIR", file=sys.stderr)
        return 2
    try:
        print(summarize(Path(args[0])))
    except (LoadTestError, OSError, KeyError, ValueError) as error:
        print(f"loadtest.targets: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
