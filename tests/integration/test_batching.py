"""Dynamic batching on a real server: merging, queue limits, deadlines, cancellation and priorities.

One request with a wide input (`BUSY`, a few hundred ms of compute) keeps the model's single
instance busy, so the requests sent meanwhile queue up deterministically.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.codec import raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from tests.integration.helpers import infer_request, stub_for
from tests.integration.routing_support import labelled, samples
from tests.support import onnx_models
from tests.support.servers import running_app

BUSY = np.random.default_rng(0).random((1, 2600), dtype=np.float32)  # a few hundred ms on one thread


def expected(x: np.ndarray) -> np.ndarray:
    return ((x**2).sum(axis=1) * x.sum(axis=1) ** 2).reshape(-1, 1)


def small(i: int, rows: int = 1) -> np.ndarray:
    return np.arange(4 * rows, dtype=np.float32).reshape(rows, 4) / (i + 1)


def model(root: Path, config: str = "") -> Path:
    onnx_models.write_model(root, "rows", onnx_models.slow_rows(), config="max_batch_size = 32\n" + config)
    return root


async def statistics(stub: pb_grpc.GRPCInferenceServiceStub) -> pb.ModelStatistics:
    (stats,) = (await stub.ModelStatistics(pb.ModelStatisticsRequest(name="rows"))).model_stats
    return stats


async def start_busy(stub: pb_grpc.GRPCInferenceServiceStub) -> asyncio.Future[pb.ModelInferResponse]:
    busy = asyncio.ensure_future(stub.ModelInfer(infer_request("rows", {"x": BUSY})))
    await asyncio.sleep(0.05)
    assert not busy.done(), "the busy request finished too early to hold the instance"
    return busy


def output(response: pb.ModelInferResponse) -> np.ndarray:
    tensor = response.outputs[0]
    return raw_to_array(response.raw_output_contents[0], tensor.datatype, tensor.shape)


async def test_concurrent_requests_share_executions_and_get_their_own_rows(tmp_path: Path) -> None:
    async with stub_for(
        model(tmp_path),
    ) as stub:
        busy = await start_busy(stub)
        inputs = [small(i, rows=1 + i % 3) for i in range(16)]  # requests that carry batches merge too
        calls = [
            asyncio.ensure_future(stub.ModelInfer(infer_request("rows", {"x": x}, id=str(i))))
            for i, x in enumerate(inputs)
        ]
        await asyncio.sleep(0.05)
        assert not busy.done()
        responses = await asyncio.gather(*calls)
        await busy
        for i, (x, response) in enumerate(zip(inputs, responses, strict=True)):
            assert response.id == str(i)
            np.testing.assert_allclose(output(response), expected(x), rtol=1e-5)
        stats = await statistics(stub)
        rows = sum(x.shape[0] for x in inputs)
        assert stats.inference_count == 1 + rows
        assert stats.execution_count == 2  # the busy request, then everything queued behind it at once
        assert {b.batch_size for b in stats.batch_stats} == {1, rows}


async def test_mixed_shapes_are_batched_separately(tmp_path: Path) -> None:
    async with stub_for(model(tmp_path)) as stub:
        busy = await start_busy(stub)
        narrow = [np.full((1, 4), i, np.float32) for i in range(4)]
        wide = [np.full((1, 6), i, np.float32) for i in range(4)]
        calls = [asyncio.ensure_future(stub.ModelInfer(infer_request("rows", {"x": x}))) for x in narrow + wide]
        responses = await asyncio.gather(*calls)
        await busy
        for x, response in zip(narrow + wide, responses, strict=True):
            np.testing.assert_allclose(output(response), expected(x), rtol=1e-5)
        assert (await statistics(stub)).execution_count == 3


async def test_full_queue_rejects_at_once(tmp_path: Path) -> None:
    async with stub_for(model(tmp_path, "[batching]\nmax_queue_size = 2\n")) as stub:
        busy = await start_busy(stub)
        calls = [asyncio.ensure_future(stub.ModelInfer(infer_request("rows", {"x": small(i)}))) for i in range(5)]
        results = await asyncio.gather(*calls, return_exceptions=True)
        await busy
        rejected = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(rejected) == 3
        for error in rejected:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "rows:1" in (error.details() or "") and "2 requests" in (error.details() or "")


async def test_deadline_expiring_in_the_queue_is_never_executed(tmp_path: Path) -> None:
    async with running_app(model(tmp_path)) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        busy = await start_busy(stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(infer_request("rows", {"x": small(0)}), timeout=0.05)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        # The `timeout` parameter (µs) is enforced by the server itself.
        request = infer_request("rows", {"x": small(1)})
        request.parameters["timeout"].int64_param = 20_000
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "request to model rows:1 timed out after waiting" in (caught.value.details() or "")
        assert "in the queue; it was not executed" in (caught.value.details() or "")
        await busy
        stats = await statistics(stub)
        assert stats.execution_count == 1 and stats.inference_count == 1
        # Both frontends count the two failures alike: the caller's own deadline as CANCELLED (the caller gave up),
        # the server's as DEADLINE_EXCEEDED; on the native frontend all three requests stayed in C++.
        await until_counted(app, "rows", 3)
        assert outcomes(app, "rows") == {"OK": 1, "CANCELLED": 1, "DEADLINE_EXCEEDED": 1}
        assert native_taken(app, "rows") == (3 if app.frontend == "native" else 0)
        assert (await statistics(stub)).inference_stats.fail.count == 2


async def test_a_default_timeout_expires_queued_requests_on_either_frontend(tmp_path: Path) -> None:
    root = model(tmp_path, "[batching]\ndefault_timeout_us = 20000\n")
    async with running_app(root) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        busy = await start_busy(stub)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(infer_request("rows", {"x": small(0)}))
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "not executed" in (caught.value.details() or "")
        unlimited = infer_request("rows", {"x": small(1)})
        unlimited.parameters["timeout"].int64_param = 0  # 0: no server timeout, not even the default
        answered = asyncio.ensure_future(stub.ModelInfer(unlimited))
        await busy
        np.testing.assert_allclose(output(await answered), expected(small(1)), rtol=1e-5)
        await until_counted(app, "rows", 3)
        assert outcomes(app, "rows") == {"OK": 2, "DEADLINE_EXCEEDED": 1}
        assert native_taken(app, "rows") == (3 if app.frontend == "native" else 0)


def outcomes(app: App, model_name: str) -> dict[str, float]:
    """The model's inference_requests_total by status code (every version)."""
    counted: dict[str, float] = {}
    for labels, value in samples(app.registry, "inference_requests_total").items():
        names = dict(labels)
        if names.get("model") == model_name and value:
            counted[names["code"]] = counted.get(names["code"], 0.0) + value
    return counted


def native_taken(app: App, model_name: str) -> float:
    return samples(app.registry, "inference_native_requests_total").get(labelled(model=model_name), 0.0)


async def until_counted(app: App, model_name: str, requests: int) -> None:
    """Until the model's request counter holds `requests` (a failure C++ answered is recorded by the event loop
    right after)."""
    for _ in range(200):
        if sum(outcomes(app, model_name).values()) >= requests:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{model_name}: fewer than {requests} requests counted")


async def test_cancelled_request_leaves_the_queue(tmp_path: Path) -> None:
    async with stub_for(model(tmp_path)) as stub:
        busy = await start_busy(stub)
        call = stub.ModelInfer(infer_request("rows", {"x": small(0)}))
        await asyncio.sleep(0.02)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await busy
        await asyncio.sleep(0.05)
        stats = await statistics(stub)
        assert stats.execution_count == 1


async def test_priority_order_and_invalid_priority(tmp_path: Path) -> None:
    config = "[batching]\nenabled = false\npriority_levels = 2\ndefault_priority_level = 2\n"
    root = model(tmp_path, config)
    async with running_app(root) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        busy = await start_busy(stub)
        finished: list[str] = []

        async def call(name: str, priority: int) -> None:
            request = infer_request("rows", {"x": small(0)}, id=name)
            if priority:
                request.parameters["priority"].uint64_param = priority
            await stub.ModelInfer(request)
            finished.append(name)

        low = [asyncio.ensure_future(call(f"low{i}", 0)) for i in range(3)]  # default level 2
        await asyncio.sleep(0.02)
        high = asyncio.ensure_future(call("high", 1))
        await asyncio.gather(busy, high, *low)
        assert finished[0] == "high"

        request = infer_request("rows", {"x": small(0)})
        request.parameters["priority"].uint64_param = 3
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "1..2" in (caught.value.details() or "")
        # The native frontend read the valid priorities in C++ (the busy, low and high requests never left it); the
        # out-of-range one went to the Python path, which refused it.
        assert native_taken(app, "rows") == (5 if app.frontend == "native" else 0)


async def test_model_config_reports_the_batching_policy(tmp_path: Path) -> None:
    config = "[batching]\nmax_queue_delay_us = 500\npreferred_batch_sizes = [4, 8]\nmax_queue_size = 7\n"
    onnx_models.write_model(tmp_path, "off", onnx_models.slow_rows(), config="[batching]\nenabled = false\n")
    async with stub_for(model(tmp_path, config)) as stub:
        rows = (await stub.ModelConfig(pb.ModelConfigRequest(name="rows"))).config
        assert rows.WhichOneof("scheduling_choice") == "dynamic_batching"
        assert list(rows.dynamic_batching.preferred_batch_size) == [4, 8]
        assert rows.dynamic_batching.max_queue_delay_microseconds == 500
        assert rows.dynamic_batching.default_queue_policy.max_queue_size == 7
        off = (await stub.ModelConfig(pb.ModelConfigRequest(name="off"))).config
        assert off.WhichOneof("scheduling_choice") is None


async def test_a_request_larger_than_the_default_batch_runs_alone(tmp_path: Path) -> None:
    # No config.toml: the default max_batch_size (32) is not the client's limit, so 100 rows run in one execution.
    onnx_models.write_model(tmp_path, "plain", onnx_models.identity("FP32"))
    onnx_models.write_model(tmp_path, "limited", onnx_models.identity("FP32"), config="max_batch_size = 32\n")
    async with stub_for(tmp_path) as stub:
        rows = np.arange(300, dtype=np.float32).reshape(100, 3)
        small_calls = [stub.ModelInfer(infer_request("plain", {"INPUT0": rows[:1]})) for _ in range(8)]
        big, *smalls = await asyncio.gather(stub.ModelInfer(infer_request("plain", {"INPUT0": rows})), *small_calls)
        np.testing.assert_array_equal(raw_to_array(big.raw_output_contents[0], "FP32", [100, 3]), rows)
        assert all(len(response.raw_output_contents[0]) == 12 for response in smalls)
        with pytest.raises(grpc.aio.AioRpcError) as refused:  # an explicit limit is the client's contract
            await stub.ModelInfer(infer_request("limited", {"INPUT0": rows}))
        assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "exceeds its max_batch_size 32" in (refused.value.details() or "")
