"""One request's bad data never fails the requests it would share an execution with (issue 10, findings 3, 16).

Each model waits up to 5 ms for a batch to fill, so concurrent requests do merge: on a server that merged
first and validated later, every batch holding a bad request failed as a whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from oip.codec import raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request, stub_for
from tests.support import onnx_models

GATHER = "max_batch_size = 64\n[batching]\nmax_queue_delay_us = 5000\npreferred_batch_sizes = [64]\n"
"""Batches wait for company: a request alone would not show whether it was isolated."""


def repository(root: Path) -> Path:
    onnx_models.write_model(root, "text", onnx_models.identity("BYTES"), config=GATHER)
    onnx_models.write_model(root, "lookup", onnx_models.lookup(), config=GATHER)
    onnx_models.write_model(root, "pooled", onnx_models.batch_pooled(), config=GATHER)
    return root


def words(i: int, bad: bool) -> npt.NDArray[Any]:
    items = [f"req-{i}-é".encode(), b"x", b"\xff\xfe" if bad else b"ok"]
    array = np.empty(3, dtype=np.object_)
    array[:] = items
    return array.reshape(1, 3)


def decoded(response: pb.ModelInferResponse, index: int = 0) -> npt.NDArray[Any]:
    tensor = response.outputs[index]
    return raw_to_array(response.raw_output_contents[index], tensor.datatype, tensor.shape)


async def outcome(call: Any) -> pb.ModelInferResponse | grpc.aio.AioRpcError:
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        return error


async def statistics(stub: pb_grpc.GRPCInferenceServiceStub, name: str) -> pb.ModelStatistics:
    (stats,) = (await stub.ModelStatistics(pb.ModelStatisticsRequest(name=name))).model_stats
    return stats


async def test_bad_utf8_requests_among_concurrent_good_ones_fail_alone(tmp_path: Path) -> None:
    bad = {i for i in range(60) if i % 6 == 5}
    async with stub_for(repository(tmp_path)) as stub:
        calls = [stub.ModelInfer(infer_request("text", {"INPUT0": words(i, i in bad)})) for i in range(60)]
        results = await asyncio.gather(*(outcome(call) for call in calls))
        stats = await statistics(stub, "text")
    for i, result in enumerate(results):
        if i in bad:
            assert isinstance(result, grpc.aio.AioRpcError)
            assert result.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "input 'INPUT0'" in (result.details() or "")
            assert "UTF-8" in (result.details() or "")
        else:
            assert isinstance(result, pb.ModelInferResponse), result
            np.testing.assert_array_equal(decoded(result), words(i, False))
    assert stats.execution_count < 60 - len(bad)  # the good ones did share executions


async def test_bad_utf8_requests_within_one_stream_fail_alone(tmp_path: Path) -> None:
    async def requests() -> AsyncIterator[pb.ModelInferRequest]:
        for i in range(40):
            yield infer_request("text", {"INPUT0": words(i, i % 8 == 3)}, id=str(i))

    async with stub_for(repository(tmp_path)) as stub:
        responses = [response async for response in stub.ModelStreamInfer(requests())]
    assert len(responses) == 40
    for response in responses:
        i = int(response.infer_response.id)
        if i % 8 == 3:
            assert response.error_message.startswith("INVALID_ARGUMENT:")
            assert "input 'INPUT0'" in response.error_message
        else:
            assert response.error_message == ""
            np.testing.assert_array_equal(decoded(response.infer_response), words(i, False))


async def test_a_request_failing_inside_the_runtime_does_not_fail_its_batch_mates(tmp_path: Path) -> None:
    def indices(i: int) -> npt.NDArray[np.int64]:
        return np.array([[99 if i % 10 == 7 else i % 4]], dtype=np.int64)  # 99 is outside the table

    async with stub_for(repository(tmp_path)) as stub:
        calls = [stub.ModelInfer(infer_request("lookup", {"x": indices(i)})) for i in range(40)]
        results = await asyncio.gather(*(outcome(call) for call in calls))
        stats = await statistics(stub, "lookup")
    table = np.array([0.5, 1.5, 2.5, 3.5], dtype=np.float32)
    for i, result in enumerate(results):
        if i % 10 == 7:
            assert isinstance(result, grpc.aio.AioRpcError)
            assert result.code() == grpc.StatusCode.INTERNAL
            assert "onnxruntime" in (result.details() or "")
        else:
            assert isinstance(result, pb.ModelInferResponse), result
            np.testing.assert_array_equal(decoded(result), table[indices(i)])
    assert stats.inference_count == 36


async def test_a_model_pooling_over_the_batch_answers_each_request_on_its_own(tmp_path: Path) -> None:
    inputs = [np.arange(6, dtype=np.float32).reshape(2, 3) * (i + 1) for i in range(16)]
    async with stub_for(repository(tmp_path)) as stub:
        calls = [stub.ModelInfer(infer_request("pooled", {"x": x})) for x in inputs]
        responses = await asyncio.gather(*calls)
        stats = await statistics(stub, "pooled")
        config = (await stub.ModelConfig(pb.ModelConfigRequest(name="pooled"))).config
    for x, response in zip(inputs, responses, strict=True):
        np.testing.assert_allclose(decoded(response, 0), x - x.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(decoded(response, 1), [x.sum()], rtol=1e-6)
    assert stats.execution_count == 16  # never merged
    assert config.max_batch_size == 64  # a request may still carry several rows
    assert not config.HasField("dynamic_batching")
    assert "output 'centered'" in config.parameters["dynamic_batching_disabled"].string_value
