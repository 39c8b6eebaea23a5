"""ModelStreamInfer: many requests on one stream, errors reported in-stream, completion order."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np

from oip.codec import raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from tests.integration.helpers import infer_request, stub_for
from tests.integration.test_batching import (
    expected,
    native_taken,
    outcomes,
    output,
    small,
    start_busy,
    statistics,
    until_counted,
)
from tests.support import onnx_models
from tests.support.servers import running_app


async def test_stream_serves_every_request_and_reports_errors_in_stream(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    onnx_models.write_model(tmp_path, "slow", onnx_models.slow_matmul())

    def good(i: int) -> pb.ModelInferRequest:
        return infer_request("identity", {"INPUT0": np.full((1, 3), i, np.float32)}, id=f"ok-{i}")

    async def requests() -> AsyncIterator[pb.ModelInferRequest]:
        slow_input = np.random.default_rng(0).random((1, 2000), dtype=np.float32)
        yield infer_request("slow", {"x": slow_input}, id="slow")
        for i in range(20):
            yield good(i)
        yield infer_request("identity", {"WRONG": np.zeros((1, 3), np.float32)}, id="bad-input")
        yield infer_request("missing_model", {"INPUT0": np.zeros((1, 3), np.float32)}, id="bad-model")

    async with stub_for(tmp_path) as stub:
        responses = [response async for response in stub.ModelStreamInfer(requests())]

    assert len(responses) == 23
    by_id = {r.infer_response.id: r for r in responses}
    for i in range(20):
        response = by_id[f"ok-{i}"]
        assert response.error_message == ""
        output = response.infer_response.outputs[0]
        values = raw_to_array(response.infer_response.raw_output_contents[0], output.datatype, output.shape)
        np.testing.assert_array_equal(values, np.full((1, 3), i, np.float32))
    assert by_id["bad-input"].error_message.startswith("INVALID_ARGUMENT:")
    assert "'WRONG'" in by_id["bad-input"].error_message
    assert by_id["bad-model"].error_message.startswith("NOT_FOUND:")
    assert by_id["slow"].error_message == ""
    # Served concurrently: the slow request, sent first, does not hold back the fast ones.
    assert responses[0].infer_response.id != "slow"


# ---------------------------------------------------------------- the native path's streamed messages
# On the native frontend a stream's plain messages are parsed, batched and answered in C++ and the rest go to the
# stream's Python handler; on either frontend the client sees the same answers on one stream.


def rows_model(root: Path, config: str = "") -> Path:
    onnx_models.write_model(root, "rows", onnx_models.slow_rows(), config="max_batch_size = 32\n" + config)
    return root


def rows_request(index: int, **parameters: int | str) -> pb.ModelInferRequest:
    request = infer_request("rows", {"x": small(index)}, id=f"r{index}")
    for name, value in parameters.items():
        if isinstance(value, str):
            request.parameters[name].string_param = value
        else:
            request.parameters[name].int64_param = value
    return request


@asynccontextmanager
async def busy_rows(
    root: Path,
) -> AsyncIterator[tuple[App, pb_grpc.GRPCInferenceServiceStub, asyncio.Future[pb.ModelInferResponse]]]:
    """A server on `root`'s rows model with its one instance busy for a few hundred ms (the busy call's answer)."""
    async with running_app(root) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        yield app, stub, await start_busy(stub)


async def test_a_streams_plain_messages_and_the_others_share_one_stream(tmp_path: Path) -> None:
    async with busy_rows(rows_model(tmp_path)) as (app, stub, busy):

        async def messages() -> AsyncIterator[pb.ModelInferRequest]:
            for index in range(30):
                yield rows_request(index)
            yield rows_request(30, priority=1)  # a parameter C++ reads: still native
            yield rows_request(31, note="kept by Python")  # any other parameter: the Python path
            yield infer_request("rows", {"WRONG": small(0)}, id="bad")  # Python's error, in the stream
            # The client half-closes here, while every request above still waits behind the busy one: the stream
            # stays open until each has been answered.

        responses = [response async for response in stub.ModelStreamInfer(messages())]
        await busy
        await until_counted(app, "rows", 34)
        taken = native_taken(app, "rows")

    by_id = {response.infer_response.id: response for response in responses}
    assert len(responses) == 33 and len(by_id) == 33
    for index in range(32):
        response = by_id[f"r{index}"]
        assert response.error_message == ""
        assert response.infer_response.model_name == "rows" and response.infer_response.model_version == "1"
        np.testing.assert_allclose(output(response.infer_response), expected(small(index)), rtol=1e-5)
    assert by_id["bad"].error_message.startswith("INVALID_ARGUMENT:") and "'WRONG'" in by_id["bad"].error_message
    assert by_id["bad"].infer_response.model_name == "rows"
    assert taken == (32 if app.frontend == "native" else 0)  # the 31 plain ones and the busy call


async def test_a_streamed_request_that_expires_in_the_queue_fails_alone_with_the_same_words(tmp_path: Path) -> None:
    async with busy_rows(rows_model(tmp_path)) as (app, stub, busy):
        stream = stub.ModelStreamInfer()
        await stream.write(rows_request(0, timeout=20_000))  # 20 ms, behind a request of a few hundred
        await stream.write(rows_request(1))
        await stream.done_writing()
        responses = [response async for response in stream]
        await busy
        await until_counted(app, "rows", 3)
        counted = outcomes(app, "rows")
        taken = native_taken(app, "rows")

    by_id = {response.infer_response.id: response for response in responses}
    expired = by_id["r0"]
    assert expired.error_message.startswith("DEADLINE_EXCEEDED: request to model rows:1 timed out after waiting ")
    assert expired.error_message.endswith(" ms in the queue; it was not executed")
    assert (expired.infer_response.model_name, expired.infer_response.model_version) == ("rows", "")  # as sent
    assert list(expired.infer_response.outputs) == []
    assert by_id["r1"].error_message == ""
    np.testing.assert_allclose(output(by_id["r1"].infer_response), expected(small(1)), rtol=1e-5)
    assert counted == {"OK": 2, "DEADLINE_EXCEEDED": 1}
    assert taken == (3 if app.frontend == "native" else 0)


async def test_a_streamed_request_past_a_full_queue_is_refused_alone(tmp_path: Path) -> None:
    root = rows_model(tmp_path, "[batching]\nmax_queue_size = 2\n")
    async with busy_rows(root) as (_, stub, busy):
        stream = stub.ModelStreamInfer()
        for index in range(4):
            await stream.write(rows_request(index))
        await stream.done_writing()
        responses = [response async for response in stream]
        await busy

    refused = [response for response in responses if response.error_message]
    served = [response for response in responses if not response.error_message]
    assert len(responses) == 4 and len(served) == 2 and len(refused) == 2
    for response in refused:
        assert response.error_message.startswith("RESOURCE_EXHAUSTED:"), response.error_message
        assert "queue" in response.error_message and response.infer_response.model_name == "rows"


async def test_a_client_cancelling_a_stream_with_queued_requests_leaves_the_server_serving(tmp_path: Path) -> None:
    async with busy_rows(rows_model(tmp_path)) as (app, stub, busy):
        stream = stub.ModelStreamInfer()
        for index in range(10):
            await stream.write(rows_request(index))
        await asyncio.sleep(0.05)  # read and queued behind the busy request
        stream.cancel()
        await busy
        await until_counted(app, "rows", 11)
        counted = outcomes(app, "rows")
        stats = await statistics(stub)
        response = await stub.ModelInfer(rows_request(11))

    # The cancelled stream's requests never ran: dropped from the queue when the next batch formed.
    assert counted == {"OK": 1, "CANCELLED": 10}
    assert stats.execution_count == 1
    np.testing.assert_allclose(output(response), expected(small(11)), rtol=1e-5)
