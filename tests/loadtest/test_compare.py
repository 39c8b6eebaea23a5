"""`python -m loadtest compare`."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.compare import compare_reports, main_compare
from loadtest.errors import LoadTestError
from loadtest.report.json_report import write_json
from tests.loadtest.test_report_json_markdown import make_level, make_report


def _row(text: str, mode: str, level: str) -> list[str]:
    rows = [line.split() for line in text.splitlines() if line.split()[:2] == [mode, level]]
    assert len(rows) == 1, text
    return rows[0]


def test_ratios_of_matched_levels() -> None:
    a, b = make_report(), make_report()
    a.levels = [make_level("closed", 8, 100.0, p50=4.0), make_level("closed", 16, 200.0)]
    b.levels = [make_level("closed", 8, 150.0, p50=2.0), make_level("open", 100, 90.0)]
    b.ratios = {"target/grpc_floor@c8": 0.5, "new": 1.0}
    text = compare_reports(a, b)
    # throughput A, B, B/A, p50 A/B, p99 A, B, A/B (p99 = 3 * p50)
    assert _row(text, "closed", "8") == ["closed", "8", "100.0", "150.0", "1.50", "2.00", "12.00", "6.00", "2.00"]
    assert "only in A: closed 16" in text
    assert "only in B: open 100" in text
    assert "note: different" not in text
    ratio_line = next(line for line in text.splitlines() if line.startswith("target/grpc_floor@c8"))
    assert ratio_line.split() == ["target/grpc_floor@c8", "0.314", "0.500", "1.59"]
    assert next(line for line in text.splitlines() if line.startswith("new")).split() == ["new", "-", "1.000", "-"]


def test_no_matching_levels_and_different_setups() -> None:
    a, b = make_report(), make_report()
    b.model, b.settings = "other_model", {"batch_size": 8}
    b.levels = [make_level("open", 7, 10.0)]
    a.ratios, b.ratios = {}, {}
    text = compare_reports(a, b)
    assert "different models (resnet_tiny vs other_model)" in text
    assert "different batch sizes (4 vs 8)" in text
    assert "no load level" in text
    assert "infer/s A" not in text


def test_missing_latency_and_zero_throughput_give_dashes() -> None:
    a, b = make_report(), make_report()
    a.levels = [make_level("closed", 1, 0.0, latency=False)]
    b.levels = [make_level("closed", 1, 10.0)]
    assert _row(compare_reports(a, b), "closed", "1") == ["closed", "1", "0.0", "10.0", "-", "-", "-", "6.00", "-"]


def test_main_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_json(make_report(), tmp_path / "a.json")
    write_json(make_report(), tmp_path / "b.json")
    assert main_compare([tmp_path / "a.json", tmp_path / "b.json"]) == 0
    out = capsys.readouterr().out
    assert _row(out, "closed", "64")[4] == "1.00"
    with pytest.raises(LoadTestError, match="exactly two"):
        main_compare([tmp_path / "a.json"])
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(LoadTestError, match="not valid JSON"):
        main_compare([tmp_path / "a.json", tmp_path / "broken.json"])
