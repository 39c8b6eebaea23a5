"""ModelStreamInfer: many requests on one stream, errors reported in-stream, completion order."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np

from oip.codec import raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from tests.integration.helpers import infer_request, stub_for
from tests.support import onnx_models


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
