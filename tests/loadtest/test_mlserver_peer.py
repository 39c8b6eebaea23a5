"""The MLServer peer's pure parts: the settings it writes, its success count from Prometheus text, and what
peer_bench does without MLServer. None of it needs MLServer installed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import mlserver_peer, peer_bench
from loadtest.errors import LoadTestError
from loadtest.mlserver_peer import Ports, TensorSpec, model_settings, parse_counts, server_settings, write_folder
from loadtest.peer_models import build

PORTS = Ports(grpc=9101, http=9102, metrics=9103)


def test_server_settings_are_loopback_quiet_and_keep_metrics() -> None:
    settings = server_settings(PORTS, parallel_workers=0)
    assert settings["host"] == "127.0.0.1"
    assert (settings["grpc_port"], settings["http_port"], settings["metrics_port"]) == (9101, 9102, 9103)
    assert settings["metrics_endpoint"] == "/metrics"  # the success count reads it
    assert settings["parallel_workers"] == 0 and settings["debug"] is False


def test_model_settings_point_to_our_runtime_with_adaptive_batching(tmp_path: Path) -> None:
    x, y = TensorSpec("x", "FP32", (-1, 256)), TensorSpec("y", "FP32", (-1, 10))
    settings = model_settings("mlp", tmp_path / "model.onnx", [x], [y])
    assert settings["name"] == "mlp"
    assert settings["implementation"] == "mlserver_runtime.OnnxModel"
    assert settings["parameters"] == {"uri": str((tmp_path / "model.onnx").resolve())}
    assert settings["max_batch_size"] == 32
    assert 0 < settings["max_batch_time"] <= 0.001  # MLServer batches only when both are > 0 (and size > 1)
    assert settings["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 256]}]
    assert settings["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 10]}]


def test_write_folder_lays_out_an_mlserver_repository_from_the_peer_models(tmp_path: Path) -> None:
    repository = tmp_path / "peer-models"
    build(repository)
    folder = tmp_path / "mlserver"
    write_folder(folder, repository, "mlp", PORTS, parallel_workers=1)
    assert json.loads((folder / "settings.json").read_text())["parallel_workers"] == 1
    model = json.loads((folder / "mlp" / "model-settings.json").read_text())
    assert model["parameters"]["uri"] == str((repository / "mlp" / "1" / "model.onnx").resolve())
    assert model["inputs"] == [{"name": "x", "datatype": "FP32", "shape": [-1, 256]}]
    assert model["outputs"] == [{"name": "y", "datatype": "FP32", "shape": [-1, 10]}]
    assert sorted(p.name for p in folder.iterdir()) == ["mlp", "settings.json"]


METRICS = """\
# HELP model_infer_request_success_total Model infer request success count
# TYPE model_infer_request_success_total counter
model_infer_request_success_total{model="mlp",version="None"} 4870.0
model_infer_request_success_total{model="mlp",version="1"} 5.0
model_infer_request_success_total{model="tiny",version="None"} 99.0
# HELP model_infer_request_success_created Model infer request success count
# TYPE model_infer_request_success_created gauge
model_infer_request_success_created{model="mlp",version="None"} 1.7645e+09
# HELP model_infer_request_failure_total Model infer request failure count
# TYPE model_infer_request_failure_total counter
model_infer_request_failure_total{model="mlp",version="None"} 3.0
# HELP grpc_server_handled_total Total number of RPCs completed on the server
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="OK",grpc_method="ModelInfer"} 123456.0
"""


def test_counts_come_from_the_model_counters_summed_over_versions() -> None:
    assert parse_counts(METRICS, "mlp") == (4875, 3)
    assert parse_counts(METRICS, "tiny") == (99, 0)
    assert parse_counts(METRICS, "heavy") == (0, 0)
    assert parse_counts("", "mlp") == (0, 0)


def test_without_mlserver_peer_bench_skips_it_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(mlserver_peer, "VENV", tmp_path / "absent")
    assert not mlserver_peer.available()
    assert peer_bench.mlserver_plan(["tiny", "mlp", "heavy"]) == ()
    (line,) = capsys.readouterr().out.splitlines()
    assert "mlserver: skipped" in line and "setup_mlserver.sh" in line
    assert peer_bench.mlserver_plan(["tiny", "heavy"]) == ()
    assert capsys.readouterr().out == ""  # not asked for: nothing to say
    with pytest.raises(LoadTestError, match=r"setup_mlserver\.sh"), mlserver_peer.mlserver(tmp_path, "mlp"):
        pass


def test_with_mlserver_only_mlp_is_planned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mlserver").write_text("")
    monkeypatch.setattr(mlserver_peer, "VENV", tmp_path)
    assert peer_bench.mlserver_plan(["tiny", "mlp", "heavy"]) == ("mlp",)


def test_ratios_against_mlserver() -> None:
    best = {"python": {"mlp": 3000.0, "tiny": 4000.0}, "native": {"mlp": 19000.0}, "triton": {}, "floor": {},
            "mlserver": {"mlp": 1500.0}}  # fmt: skip
    assert peer_bench.against_mlserver(best) == {"python": {"mlp": 2.0}, "native": {"mlp": 12.67}}
