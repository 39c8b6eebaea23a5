"""The drift status view of the admin API: GetDrift and `python -m server.admin drift`, alone and under --workers."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from oip.v1 import routing_admin_pb2 as admin_pb
from oip.v1 import routing_admin_pb2_grpc as admin_grpc
from server.admin.cli import NO_DRIFT_SCORES
from server.admin.cli import main as admin_main
from server.profile import main as profile_main
from tests.integration.prediction_support import send, send_over_connections
from tests.support import onnx_models
from tests.support.process import ServerProcess
from tests.support.servers import running_app

# A long window: once the traffic is counted, every pass of the monitor gives the same scores.
CONFIG = "max_batch_size = 64\n\n[telemetry.drift]\nwindow_s = 60.0\nmin_samples = 400\ninterval_s = 0.2\n"
Scores = dict[tuple[int, str, str], float]


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`scorer` with a reference profile (built by the profile CLI), and `plain` without one."""
    root = tmp_path_factory.mktemp("drift-admin")
    onnx_models.write_model(root / "repo", "scorer", onnx_models.scorer(), config=CONFIG)
    onnx_models.write_model(root / "repo", "plain", onnx_models.scorer(), config=CONFIG)
    np.save(root / "reference.npy", np.random.default_rng(5).beta(2.0, 5.0, (5000, 1)).astype(np.float32))
    command = ["--model-repository", str(root / "repo"), "--model", "scorer", "--version", "1"]
    assert profile_main([*command, "--data", str(root / "reference.npy")]) == 0
    return root / "repo"


def gauge_scores(text: str, model: str = "scorer") -> Scores:
    return {
        (int(s.labels["version"]), s.labels["output"], s.labels["method"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "inference_drift_score" and s.labels["model"] == model
    }


async def test_get_drift_reports_the_gauges_values_and_names_what_is_missing(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = np.random.default_rng(6).beta(2.0, 5.0, 1000).astype(np.float32)
    async with running_app(repository) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        admin = admin_grpc.RoutingAdminStub(channel)
        # No predictions yet: no scores, which is not an error; the version's setup says why.
        empty = await admin.GetDrift(admin_pb.ModelRequest(model="scorer"))
        assert list(empty.scores) == []
        assert [(v.version, v.has_reference, v.min_samples) for v in empty.versions] == [(1, True, 400)]
        plain = await admin.GetDrift(admin_pb.ModelRequest(model="plain"))
        assert list(plain.scores) == [] and not plain.versions[0].has_reference
        assert (
            await asyncio.to_thread(
                admin_main, ["--address", f"127.0.0.1:{app.grpc_port}", "drift", "--model", "plain"]
            )
            == 0
        )
        printed = capsys.readouterr().out
        assert NO_DRIFT_SCORES in printed and "v1 has no reference profile" in printed
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await admin.GetDrift(admin_pb.ModelRequest(model="nope"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "model 'nope' is not in the repository" in str(caught.value.details())

        await send(pb_grpc.GRPCInferenceServiceStub(channel), values)
        deadline = time.monotonic() + 10
        while True:  # until every prediction is in the window of every scored series
            report = await admin.GetDrift(admin_pb.ModelRequest(model="scorer"))
            if report.scores and all(s.window_samples == len(values) for s in report.scores):
                break
            assert time.monotonic() < deadline, f"not every prediction was scored: {report}"
            await asyncio.sleep(0.1)
        text = generate_latest(app.registry).decode()
    reported = {(s.version, s.output, s.method): s.value for s in report.scores}
    assert reported == gauge_scores(text)  # the same values, bit for bit
    assert {"score", "label", "probabilities[positive]"} <= {output for _, output, _ in reported}
    assert {method for _, _, method in reported} == {"psi", "js"}
    assert reported[(1, "score", "psi")] < 0.1  # reference-like traffic


def test_the_cli_prints_the_supervisors_scores_under_workers(
    repository: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    values = np.random.default_rng(8).beta(2.0, 5.0, 800).astype(np.float32)
    with ServerProcess(repository, "--workers", "2") as server:
        asyncio.run(send_over_connections(server.address, values))
        deadline = time.monotonic() + 10
        while server.metric("inference_drift_window_samples", model="scorer", output="score") < len(values):
            assert time.monotonic() < deadline, "the supervisor did not score both workers' predictions"
            time.sleep(0.1)
        gauges = gauge_scores(server.scrape())
        assert admin_main(["--address", server.address, "drift", "--model", "scorer"]) == 0
        printed = capsys.readouterr().out
        assert admin_main(["--address", server.address, "drift", "--model", "nope"]) == 1
        refused = capsys.readouterr().err
    rows = {tuple(line.split()) for line in printed.splitlines()[1:]}
    assert ("version", "output", "method", "value", "samples") in rows
    for (version, output, method), value in gauges.items():
        assert (str(version), output, method, f"{value:.4f}", str(len(values))) in rows, printed
    assert len(rows) == len(gauges) + 1
    assert refused.startswith("error: NOT_FOUND: model 'nope' is not in the repository; known models: plain, scorer")
