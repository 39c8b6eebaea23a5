"""Health (gRPC and HTTP), reflection, metadata, statistics and Prometheus metrics on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.servers import running_app

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[App]:
    onnx_models.write_model(tmp_path, "simple", onnx_models.add_sub(), versions=(1, 2), config="max_batch_size = 8\n")
    onnx_models.write_model(tmp_path, "corrupt", b"not onnx")
    async with running_app(tmp_path) as started:
        yield started


@pytest.fixture
async def channel(app: App) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as connected:
        yield connected


async def http_get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    await writer.drain()
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def test_grpc_health_for_server_and_each_model(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    check = health_pb2.HealthCheckRequest
    # Strict readiness (the default): "corrupt" failed to load, so the server as a whole is not ready.
    assert (await health.Check(check(service=""))).status == NOT_SERVING
    assert (await health.Check(check(service="simple"))).status == SERVING
    assert (await health.Check(check(service="corrupt"))).status == NOT_SERVING
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await health.Check(check(service="unknown"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND

    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="simple"))
    await asyncio.sleep(0)  # health updates are scheduled on the loop
    assert (await health.Check(check(service="simple"))).status == NOT_SERVING


async def test_reflection_lists_services(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def requests() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield reflection_pb2.ServerReflectionRequest(list_services="")

    names = set()
    async for response in stub.ServerReflectionInfo(requests()):
        names.update(service.name for service in response.list_services_response.service)
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names


async def test_server_and_model_metadata(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    live = await stub.ServerLive(pb.ServerLiveRequest())
    assert live.live
    server = await stub.ServerMetadata(pb.ServerMetadataRequest())
    assert server.name and server.version
    assert {"model_repository", "model_configuration", "statistics"} <= set(server.extensions)

    model = await stub.ModelMetadata(pb.ModelMetadataRequest(name="simple"))
    assert model.name == "simple" and list(model.versions) == ["1", "2"]
    assert model.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in model.inputs] == [
        ("INPUT0", "INT32", [-1, 16]),
        ("INPUT1", "INT32", [-1, 16]),
    ]
    config = (await stub.ModelConfig(pb.ModelConfigRequest(name="simple", version="1"))).config
    assert config.max_batch_size == 8
    assert list(config.input[0].dims) == [16]
    assert config.backend == "onnxruntime"
    assert config.version_policy.WhichOneof("policy_choice") == "all"
    for missing in (pb.ModelMetadataRequest(name="nope"), pb.ModelMetadataRequest(name="simple", version="9")):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelMetadata(missing)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_statistics_count_requests(channel: grpc.aio.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    batch = np.zeros((3, 16), np.int32)
    for _ in range(4):
        await stub.ModelInfer(infer_request("simple", {"INPUT0": batch, "INPUT1": batch}, version="1"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ModelInfer(infer_request("simple", {"INPUT0": batch}, version="1"))
    stats = await stub.ModelStatistics(pb.ModelStatisticsRequest(name="simple"))
    by_version = {s.version: s for s in stats.model_stats}
    assert set(by_version) == {"1", "2"}
    one = by_version["1"]
    assert one.inference_count == 12 and one.execution_count == 4
    assert one.inference_stats.success.count == 4 and one.inference_stats.fail.count == 1
    assert one.inference_stats.compute_infer.count == 4 and one.inference_stats.compute_infer.ns > 0
    assert [(b.batch_size, b.compute_infer.count) for b in one.batch_stats] == [(3, 4)]
    assert one.last_inference > 0
    assert by_version["2"].inference_count == 0
    everything = await stub.ModelStatistics(pb.ModelStatisticsRequest())
    assert {s.name for s in everything.model_stats} == {"simple"}


async def test_http_health_and_metrics(app: App, channel: grpc.aio.Channel) -> None:
    assert await http_get(app.http_port, "/v2/health/live") == (200, "live\n")
    assert await http_get(app.http_port, "/v2/health/ready") == (503, "not ready\n")  # "corrupt" failed: strict
    assert (await http_get(app.http_port, "/nope"))[0] == 404
    assert (await http_get(app.http_port, "/metrics", method="POST"))[0] == 405

    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    batch = np.zeros((2, 16), np.int32)
    await stub.ModelInfer(infer_request("simple", {"INPUT0": batch, "INPUT1": batch}))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.ModelInfer(infer_request("simple", {"INPUT0": batch}))
    status, body = await http_get(app.http_port, "/metrics")
    assert status == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }
    labels = (("model", "simple"), ("version", "2"))
    assert samples[("inference_requests_total", (("code", "OK"), *labels))] == 1
    assert samples[("inference_requests_total", (("code", "INVALID_ARGUMENT"), *labels))] == 1
    assert samples[("inference_request_duration_seconds_count", labels)] == 1
    assert samples[("inference_batch_size_sum", labels)] == 2
    assert samples[("inference_model_ready", labels)] == 1
    assert samples[("inference_model_ready", (("model", "corrupt"), ("version", "1")))] == 0
    # The plain request ran as a native batch (the invalid one went to the Python path, which refused it).
    handed_over = samples[("inference_native_batch_handover_seconds_count", ())]
    assert handed_over == (1 if app.frontend == "native" else 0)
    assert samples[("inference_native_batch_handover_seconds_sum", ())] < 5.0 * handed_over + 1e-9
    taken = samples.get(("inference_native_requests_total", (("model", "simple"),)), 0.0)
    assert taken == (1 if app.frontend == "native" else 0)


async def test_stop_reports_not_ready_and_finishes_in_flight_requests(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "slow", onnx_models.slow_matmul())
    x = np.random.default_rng(0).random((1, 2500), dtype=np.float32)  # a few hundred ms
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        in_flight = asyncio.ensure_future(stub.ModelInfer(infer_request("slow", {"x": x})))
        await asyncio.sleep(0.05)
        assert not in_flight.done()
        stopping = asyncio.create_task(app.stop(grace_s=10))
        await asyncio.sleep(0.01)
        assert (await http_get(app.http_port, "/v2/health/ready"))[0] == 503
        response = await in_flight
        assert response.model_name == "slow"
        await stopping
        with pytest.raises(grpc.aio.AioRpcError):
            await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
