"""Prediction telemetry end to end: exact counts on /metrics, the profile CLI, drift scores, --workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import numpy as np
import numpy.typing as npt
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from server.predictions.profile import load_profile
from tests.integration.prediction_support import send, send_over_connections
from tests.support import onnx_models
from tests.support.process import ServerProcess
from tests.support.servers import running_app

PROJECT = Path(__file__).resolve().parents[2]
CONFIG = "max_batch_size = 64\n"
DRIFT_CONFIG = CONFIG + "\n[telemetry.drift]\nwindow_s = 3.0\nmin_samples = 400\ninterval_s = 0.2\n"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scorer_repository(root: Path, config: str = CONFIG) -> Path:
    onnx_models.write_model(root, "scorer", onnx_models.scorer(), config=config)
    return root


def exposition(app: App) -> Samples:
    text = generate_latest(app.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def wait_for(condition: Callable[[], bool], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def bucket(output: str, class_name: str, le: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"model": "scorer", "version": "1", "output": output, "class": class_name, "le": le}
    return ("inference_prediction_bucket", tuple(sorted(labels.items())))


def predicted(output: str, class_name: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"model": "scorer", "version": "1", "output": output, "class": class_name}
    return ("inference_predicted_class_total", tuple(sorted(labels.items())))


async def test_known_inputs_give_exact_bucket_and_class_counts(tmp_path: Path) -> None:
    # Bucket bounds are "less than or equal": 0.05 is in le=0.05, 0.051 in le=0.1, 0.5 in le=0.5.
    values = np.array([0.05, 0.051, 0.5, 0.95, 0.2, 0.7, 1.0], dtype=np.float32)
    async with running_app(scorer_repository(tmp_path)) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            await send(stub, values[:3], rows=3)
            await send(stub, values[3:], rows=1)
        found = exposition(app)
    cumulative = {"0.05": 1, "0.1": 2, "0.2": 3, "0.45": 3, "0.5": 4, "0.7": 5, "0.95": 6, "1.0": 7, "+Inf": 7}
    for le, count in cumulative.items():
        assert found[bucket("score", "", le)] == count, le
    # The "positive" column of the probabilities is x itself; "negative" is 1 - x.
    assert found[bucket("probabilities", "positive", "0.5")] == 4
    assert found[bucket("probabilities", "negative", "0.1")] == 2  # 1 - 1.0 and 1 - 0.95
    # argmax([1 - x, x]): x = 0.5 is a tie, which goes to class 0.
    assert found[predicted("probabilities", "positive")] == 3
    assert found[predicted("probabilities", "negative")] == 4
    assert found[predicted("label", "positive")] == 3
    assert found[predicted("label", "negative")] == 4
    count_labels = (("class", ""), ("model", "scorer"), ("output", "score"), ("version", "1"))
    assert found[("inference_prediction_count", count_labels)] == 7


def run_profile_cli(repository: Path, data: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "server.profile", "--model-repository", str(repository), "--model", "scorer"]
    command += ["--version", "1", "--data", str(data), *extra]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=PROJECT, check=False)


def test_profile_cli_counts_the_models_outputs_on_the_data(tmp_path: Path) -> None:
    repository = scorer_repository(tmp_path / "repo")
    x = np.random.default_rng(1).beta(2.0, 5.0, size=(3000, 1)).astype(np.float32)
    np.savez(tmp_path / "sample.npz", x=x)
    result = run_profile_cli(repository, tmp_path / "sample.npz")
    assert result.returncode == 0, result.stderr
    profile = load_profile(repository / "scorer" / "1" / "reference.json")
    assert profile.samples == 3000
    assert profile.source["data_file"] == "sample.npz" and len(profile.source["data_sha256"]) == 64
    score = profile.histograms[("score", "")]
    assert score.edges == tuple(round(0.05 * i, 2) for i in range(1, 21))
    # The model's score is x: the proportions are x's own, bucketed "less than or equal" in float32.
    bounds = np.asarray(score.edges, dtype=np.float32)
    expected = np.bincount(np.searchsorted(bounds, x.ravel(), side="left"), minlength=21) / 3000
    np.testing.assert_allclose(score.proportions, expected, atol=1e-6)
    assert profile.classes["label"]["positive"] == pytest.approx(float(np.mean(x > 0.5)), abs=1e-6)
    assert profile.classes["probabilities"] == profile.classes["label"]


def test_profile_cli_names_what_is_wrong_with_the_data(tmp_path: Path) -> None:
    repository = scorer_repository(tmp_path / "repo")
    np.savez(tmp_path / "wrong.npz", a=np.zeros((4, 1), np.float32), b=np.zeros((4, 1), np.float32))
    result = run_profile_cli(repository, tmp_path / "wrong.npz")
    assert result.returncode == 2
    assert "no array for inputs ['x']" in result.stderr and "Traceback" not in result.stderr
    (tmp_path / "data.csv").write_text("1\n")
    result = run_profile_cli(repository, tmp_path / "data.csv")
    assert result.returncode == 2 and "expected .npz, .npy or .parquet" in result.stderr


def write_reference(repository: Path, tmp_path: Path, x: npt.NDArray[np.float32]) -> None:
    np.save(tmp_path / "reference.npy", x.reshape(-1, 1))
    result = run_profile_cli(repository, tmp_path / "reference.npy")
    assert result.returncode == 0, result.stderr


def psi(app: App, output: str = "score") -> float | None:
    assert app.drift is not None
    for score in app.drift.scores():
        if score.series.label == output and score.method == "psi":
            return score.value
    return None


async def test_drift_stays_low_for_reference_like_traffic_and_rises_when_inputs_shift(tmp_path: Path) -> None:
    repository = scorer_repository(tmp_path / "repo", DRIFT_CONFIG)
    rng = np.random.default_rng(7)
    write_reference(repository, tmp_path, rng.beta(2.0, 5.0, 20_000).astype(np.float32))
    async with running_app(repository) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert psi(app) is None  # no traffic: no score, not a zero
        await send(stub, rng.beta(2.0, 5.0, 2000).astype(np.float32))
        await wait_for(lambda: psi(app) is not None)
        stable = psi(app)
        assert stable is not None and stable < 0.1
        # The inputs shift (the score's mean moves from 0.29 to 0.71): within one window PSI is significant.
        shifted_at = time.monotonic()
        await send(stub, rng.beta(5.0, 2.0, 2000).astype(np.float32))
        await wait_for(lambda: (psi(app) or 0.0) > 0.25)
        assert time.monotonic() - shifted_at < 3.0 + 2.0  # the window (3 s) plus the monitor's tick
        found = exposition(app)
    gauge = {labels: value for (name, labels), value in found.items() if name == "inference_drift_score"}
    key = (("method", "psi"), ("model", "scorer"), ("output", "score"), ("version", "1"))
    assert gauge[key] > 0.25
    assert (("method", "js"), ("model", "scorer"), ("output", "score"), ("version", "1")) in gauge
    assert any(labels[2] == ("output", "probabilities[positive]") for labels in gauge)


def test_workers_report_one_drift_value_per_version_from_every_workers_predictions(tmp_path: Path) -> None:
    repository = scorer_repository(tmp_path / "repo", DRIFT_CONFIG.replace("window_s = 3.0", "window_s = 60.0"))
    rng = np.random.default_rng(11)
    write_reference(repository, tmp_path, rng.beta(2.0, 5.0, 20_000).astype(np.float32))
    values = rng.beta(2.0, 5.0, 1600).astype(np.float32)
    with ServerProcess(repository, "--workers", "2") as server:
        asyncio.run(send_over_connections(server.address, values))
        deadline = time.monotonic() + 20
        while server.metric("inference_drift_window_samples", model="scorer", output="score") < len(values):
            assert time.monotonic() < deadline, "the supervisor did not score both workers' predictions"
            time.sleep(0.2)
        text = server.scrape()
    series = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "inference_drift_score" and s.labels["output"] == "score"
    ]
    assert sorted(s.labels["method"] for s in series) == ["js", "psi"]  # one value per method, not one per worker
    assert all(s.labels["version"] == "1" for s in series)
    psi_value = next(s.value for s in series if s.labels["method"] == "psi")
    assert psi_value < 0.1
    workers = [
        s
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "inference_requests_total" and s.labels.get("model") == "scorer"
    ]
    assert sum(s.value for s in workers) == len(values) // 50


async def test_the_judge_rolls_back_a_canary_that_predicts_unlike_the_stable(tmp_path: Path) -> None:
    # Version 2 swaps the classes: as fast and error-free as version 1, but its scores are 1 - x.
    config = (
        'max_batch_size = 64\n\n[routing]\nweights = { "1" = 50, "2" = 50 }\n\n[routing.judge]\nenabled = true\n'
        "interval_s = 0.2\nwindow_s = 2.0\nmin_requests = 100\n\n[telemetry.drift]\ninterval_s = 0.2\n"
    )
    onnx_models.write_versions(
        tmp_path, "scorer", {1: onnx_models.scorer(), 2: onnx_models.scorer(flipped=True)}, config
    )
    rng = np.random.default_rng(3)
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        deadline = time.monotonic() + 20
        while not any(name == "inference_rollbacks_total" for name, _ in exposition(app)):
            assert time.monotonic() < deadline, "the canary that predicts otherwise was not rolled back"
            await send(stub, rng.beta(2.0, 5.0, 500).astype(np.float32), rows=10)
        found = exposition(app)
        assert app.judge is not None
        status = app.judge.status.get(("scorer", 2))
    rollbacks = {labels: v for (name, labels), v in found.items() if name == "inference_rollbacks_total"}
    assert rollbacks == {(("model", "scorer"), ("reason", "predictions"), ("version", "2")): 1.0}
    assert status is not None and status.verdict.evidence["prediction_psi"] > 1.0, status


def test_profile_of_a_bundled_model_is_valid_json_with_its_source() -> None:
    data = json.loads((PROJECT / "models" / "fraud" / "2" / "reference.json").read_text())
    assert data["format"] == 1 and data["samples"] == 5000
    assert set(data["outputs"]) == {"scores", "label"}
