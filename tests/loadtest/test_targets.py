"""`python -m loadtest.targets` reads a benchmark directory and states each target's ratio and verdict."""

from __future__ import annotations

import json
from pathlib import Path

from loadtest.report.json_report import write_json
from loadtest.results import LevelResult, RunReport
from loadtest.targets import main, summarize
from tests.loadtest.test_report_json_markdown import make_level, make_report


def write_run(root: Path, h2load: bool = False) -> None:
    def save(name: str, report: RunReport) -> None:
        write_json(report, root / name / "report.json")

    def report(*levels: LevelResult, **ratios: float) -> RunReport:
        made = make_report()
        made.levels = list(levels)
        made.baselines = []
        made.ratios = dict(ratios)
        return made

    save("p1-fraud", report(make_level("closed", 64, 1000.0), **{"target/grpc_floor@c64": 0.9}))
    if h2load:
        save("p1-fraud-h2load", report(make_level("closed", 64, 3000.0), **{"target/grpc_floor@c64": 0.7}))
        save("p2-mlp-h2load", report(make_level("closed", 64, 1500.0), **{"target_best/onnxruntime@batch32": 0.8}))
        save("p3-fraud-open-h2load", report(make_level("open", 1500, 1500.0, p50=1.0)))
        counts = {
            "concurrency": 64,
            "floor_instructions_per_request": 300_000,
            "ours_instructions_per_request": 600_000,
        }
        (root / "p1-instructions.json").write_text(json.dumps({**counts, "floor_over_ours": 0.5}))
    save("p2-mlp", report(make_level("closed", 64, 900.0), **{"target_best/onnxruntime@batch32": 0.6}))
    save("p2-mlp-nobatch", report(make_level("closed", 64, 100.0)))
    save("p3-fraud-open", report(make_level("open", 500, 500.0, p50=2.0)))
    memory = {"rss_per_version_mb": 80.0, "budget_mb": 160.0, "file_mb": 50.0, "within_budget": True}
    (root / "p5-memory.json").write_text(json.dumps(memory))


def test_summary_states_ratios_and_verdicts(tmp_path: Path, capsys) -> None:
    write_run(tmp_path)
    table = summarize(tmp_path)
    assert len(table.splitlines()) == 2 + 5
    assert "| 0.90 | >= 0.85 | yes |" in table  # P1
    assert "| 0.60 | >= 0.7 | no |" in table  # P2 against the ceiling
    assert "| 9.00 | >= 3 | yes |" in table  # P2 batching on/off
    assert "| 3.00 | <= 3 | yes |" in table  # P3: the helper's p99 is 3 x p50
    assert "| 0.50 | <= 1 | yes |" in table  # P5
    assert main([str(tmp_path)]) == 0 and "P3" in capsys.readouterr().out
    assert main([str(tmp_path / "missing")]) == 2


def test_both_clients_get_rows_and_batching_on_off_uses_the_h2load_run(tmp_path: Path) -> None:
    write_run(tmp_path, h2load=True)
    lines = summarize(tmp_path).splitlines()
    assert len(lines) == 2 + 9
    assert "h2load client" in lines[2] and "| 0.70 | >= 0.85 | no |" in lines[2]  # P1, h2load
    assert "h2load client" in lines[3] and "| 0.80 | >= 0.7 | yes |" in lines[3]  # P2, h2load
    assert "Python client" in lines[4] and "| 0.90 | >= 0.85 | yes |" in lines[4]  # P1, ours
    assert "| 15.00 | >= 3 | yes |" in lines[6]  # 1500 batched (h2load) / 100 unbatched
    assert "h2load client: p99 / p50" in lines[7] and "Python client: p99 / p50" in lines[8]
    assert "floor 300,000 / ours 600,000" in lines[9] and "| 0.50 | >= 0.85 | no |" in lines[9]
