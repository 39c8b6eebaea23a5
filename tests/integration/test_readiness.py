"""Strict readiness (the default) and serving one model's directory, against real server processes.

Strict: ready only while every model in the repository has a ready version (Triton's --strict-readiness);
a model unloaded on purpose does not count. `--lenient-readiness` reports ready once the repository loaded.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.polling import until
from tests.support.process import ServerProcess

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def readiness(server: ServerProcess) -> tuple[int, bool, int]:
    """(/v2/health/ready status, ServerReady, grpc.health.v1 status of the server)."""
    with grpc.insecure_channel(server.address) as channel:
        ready = pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest(), timeout=5).ready
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    return server.ready_status(), ready, health.status


def half_broken_repository(root: Path) -> Path:
    onnx_models.write_model(root, "good", onnx_models.identity("FP32"))
    onnx_models.write_model(root, "corrupt", b"this is not an onnx file")
    return root


def test_a_failed_model_keeps_the_server_not_ready_until_it_is_unloaded(tmp_path: Path) -> None:
    with ServerProcess(half_broken_repository(tmp_path)) as server:
        assert readiness(server) == (503, False, NOT_SERVING)
        [line] = [line for line in server.logs if line.get("event") == "not_ready"]
        assert line["not_ready"] == ["corrupt"] and line["models"] == ["good"]
        errors = [line for line in server.logs if line.get("level") == "error" and line.get("model") == "corrupt"]
        assert len(errors) == 1, errors  # one failure, one line (it used to be logged twice)
        with grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            response = stub.ModelInfer(infer_request("good", {"INPUT0": np.ones((1, 3), np.float32)}))
            assert response.model_name == "good"  # the ready model serves meanwhile
            stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="corrupt"))
        assert until(
            lambda: readiness(server) == (200, True, SERVING), timeout_s=15, interval_s=0.1
        )  # unloaded on purpose: not counted


def test_lenient_readiness_reports_ready_despite_a_failed_model(tmp_path: Path) -> None:
    with ServerProcess(half_broken_repository(tmp_path), "--lenient-readiness") as server:
        assert readiness(server) == (200, True, SERVING)


def test_an_empty_repository_is_not_ready(tmp_path: Path) -> None:
    with ServerProcess(tmp_path) as server:
        assert readiness(server) == (503, False, NOT_SERVING)
        # Loading a model into it makes it ready.
        onnx_models.write_model(tmp_path, "late", onnx_models.identity("FP32"))
        with grpc.insecure_channel(server.address) as channel:
            pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelLoad(
                pb.RepositoryModelLoadRequest(model_name="late")
            )
        assert until(lambda: readiness(server) == (200, True, SERVING), timeout_s=15, interval_s=0.1)


def test_workers_are_ready_only_when_every_worker_has_every_model(tmp_path: Path) -> None:
    with ServerProcess(half_broken_repository(tmp_path), "--workers", "2") as server:
        assert server.ready_status() == 503
        assert any(
            line.get("event") == "not_ready" and line.get("msg", "").startswith("server") for line in server.logs
        )
        with grpc.insecure_channel(server.address) as channel:
            pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelUnload(
                pb.RepositoryModelUnloadRequest(model_name="corrupt")
            )
        assert until(lambda: server.ready_status() == 200, timeout_s=15, interval_s=0.1)


def test_one_models_directory_is_served_as_that_model(tmp_path: Path) -> None:
    # KServe's storage initializer lays one model out like this at /mnt/models.
    model_dir = onnx_models.write_model(tmp_path, "scorer", onnx_models.identity("FP32"), versions=(1, 2))
    for args, name in (((), "scorer"), (("--model-name", "fraud"), "fraud")):
        with ServerProcess(model_dir, *args) as server, grpc.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            index = stub.RepositoryIndex(pb.RepositoryIndexRequest())
            assert sorted((model.name, model.version) for model in index.models) == [(name, "1"), (name, "2")]
            response = stub.ModelInfer(infer_request(name, {"INPUT0": np.ones((1, 3), np.float32)}))
            assert (response.model_name, response.model_version) == (name, "2")
            assert readiness(server) == (200, True, SERVING)
            assert any(line.get("event") == "single_model_directory" for line in server.logs)
