"""loadtest.telemetry_bench: its two repositories differ only in [telemetry], and the report's ratio."""

from __future__ import annotations

from pathlib import Path

from loadtest import telemetry_bench
from loadtest.routing_bench import summarise
from server.model_config import load_model_config

MODELS = Path(__file__).resolve().parents[2] / "models"


def test_the_repositories_hold_the_same_version_with_telemetry_off_and_on(tmp_path: Path) -> None:
    repositories = telemetry_bench.build(MODELS, tmp_path)
    off, on = repositories["off"] / "fraud", repositories["on"] / "fraud"
    assert not load_model_config(off).telemetry.enabled and load_model_config(on).telemetry.enabled
    for name in ("model.onnx", "reference.json"):
        assert (
            (off / "1" / name).read_bytes()
            == (on / "1" / name).read_bytes()
            == (MODELS / "fraud/1" / name).read_bytes()
        )


def test_the_summary_gives_every_rate_and_each_median() -> None:
    report = summarise({"off": [10.0, 30.0, 20.0], "on": [19.0]}, model="m", rounds=3)
    assert report == {
        "model": "m",
        "rounds": 3,
        "req_per_s": {"off": [10.0, 30.0, 20.0], "on": [19.0]},
        "median_req_per_s": {"off": 20.0, "on": 19.0},
    }
