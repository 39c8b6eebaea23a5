"""What a real scrape used to miss: failed requests with no version, models with no versions, the process."""

from __future__ import annotations

import logging
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.integration.routing_support import labelled, samples
from tests.support import onnx_models
from tests.support.process import ServerProcess
from tests.support.servers import running_app


async def test_requests_that_no_version_took_are_counted_by_code(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "m", onnx_models.scaled(1.0))
    async with running_app(tmp_path) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            x = {"x": np.ones((1, 2), np.float32)}
            bad_raw = infer_request("m", x)
            bad_raw.raw_input_contents.append(b"extra blob")
            for message in (infer_request("nope", x), infer_request("m", x, version="9"), bad_raw):
                with pytest.raises(grpc.aio.AioRpcError):
                    await stub.ModelInfer(message)
        unrouted = samples(app.registry, "inference_unrouted_requests_total")
        assert unrouted[labelled(code="NOT_FOUND")] == 2
        assert unrouted[labelled(code="INVALID_ARGUMENT")] == 1
        # nothing leaked into the per-version series
        assert all(("model", "nope") not in key for key in samples(app.registry, "inference_requests_total"))


async def test_a_model_with_an_invalid_config_has_a_readiness_series(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "broken", onnx_models.scaled(1.0), config="max_batch_sise = 4\n")
    onnx_models.write_model(tmp_path, "fine", onnx_models.scaled(1.0))
    async with running_app(tmp_path) as app:
        ready = samples(app.registry, "inference_model_ready")
        assert ready[labelled(model="broken", version="")] == 0  # `inference_model_ready == 0` sees it
        assert ready[labelled(model="fine", version="")] == 1
        assert ready[labelled(model="fine", version="1")] == 1
        assert samples(app.registry, "process_resident_memory_bytes")[()] > 0


def test_workers_report_their_processes_together(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "m", onnx_models.scaled(1.0))
    with ServerProcess(tmp_path) as single:
        alone = single.metric("process_resident_memory_bytes")
    with ServerProcess(tmp_path, "--workers", "2") as server:
        together = server.metric("process_resident_memory_bytes")
        assert server.metric("process_open_fds") > 0
        assert server.metric("process_cpu_seconds_total") > 0
    # the supervisor plus two workers, each a full server: well above one server alone
    assert together > 1.5 * alone


async def test_every_failed_request_logs_one_structured_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    onnx_models.write_model(tmp_path, "m", onnx_models.scaled(1.0))
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    metadata = [("traceparent", f"00-{trace}-00f067aa0ba902b7-01")]
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        caplog.set_level(logging.INFO, logger="server.requests")
        wrong = infer_request("m", {"y": np.ones((1, 2), np.float32)}, id="req-1")
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ModelInfer(wrong, metadata=metadata)
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ModelInfer(infer_request("no\nsuch", {"x": np.ones((1, 2), np.float32)}))
    failed = [r for r in caplog.records if getattr(r, "event", "") == "request_failed"]
    assert len(failed) == 2
    first, second = failed
    assert (first.model, first.version, first.code, first.request_id, first.trace_id) == (  # type: ignore[attr-defined]
        "m",
        "1",
        "INVALID_ARGUMENT",
        "req-1",
        trace,
    )
    assert "'y'" in first.error  # type: ignore[attr-defined]  # names what was wrong; no tensor data
    assert (second.model, second.version, second.code) == ("no\nsuch", "", "NOT_FOUND")  # type: ignore[attr-defined]
