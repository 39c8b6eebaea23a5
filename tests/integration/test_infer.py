"""ModelInfer against a real server: datatypes, contents, outputs and every request error."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.codec import raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import DATATYPES, build_test_repository, infer_request, sample, stub_for


@pytest.fixture
async def stub(tmp_path: Path) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    async with stub_for(build_test_repository(tmp_path)) as connected:
        yield connected


def decode(response: pb.ModelInferResponse, index: int = 0) -> np.ndarray:
    output = response.outputs[index]
    return raw_to_array(response.raw_output_contents[index], output.datatype, output.shape)


async def expect_error(call, code: grpc.StatusCode, *fragments: str) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    assert caught.value.code() == code, caught.value.details()
    details = caught.value.details() or ""
    for fragment in fragments:
        assert fragment in details, details
    return details


# FP16 has no typed-contents field in the protocol: raw only (the typed attempt is an error test below).
CASES = [(datatype, False) for datatype in DATATYPES] + [(d, True) for d in DATATYPES if d != "FP16"]


@pytest.mark.parametrize(("datatype", "typed"), CASES, ids=[f"{d}-{'typed' if t else 'raw'}" for d, t in CASES])
async def test_every_datatype_round_trips(stub, datatype: str, typed: bool) -> None:
    data = sample(datatype)
    model = f"identity_{datatype.lower()}"
    response = await stub.ModelInfer(infer_request(model, {"INPUT0": data}, typed=typed))
    assert response.outputs[0].name == "OUTPUT0"
    assert response.outputs[0].datatype == datatype
    assert list(response.outputs[0].shape) == [2, 3]
    result = decode(response)
    if datatype == "BYTES":
        assert result.tolist() == data.tolist()
    else:
        np.testing.assert_array_equal(result, data)
        assert result.dtype == data.dtype


async def test_fp16_typed_contents_are_rejected_with_advice(stub) -> None:
    request = pb.ModelInferRequest(model_name="identity_fp16")
    request.inputs.add(name="INPUT0", datatype="FP16", shape=[1, 3]).contents.fp32_contents.extend([1, 2, 3])
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "FP16", "raw_input_contents")


async def test_outputs_ids_and_versions(stub) -> None:
    a = np.arange(32, dtype=np.int32).reshape(2, 16)
    b = np.ones((2, 16), dtype=np.int32)
    response = await stub.ModelInfer(infer_request("simple", {"INPUT0": a, "INPUT1": b}, id="request-7"))
    assert response.id == "request-7"
    assert response.model_name == "simple"
    assert response.model_version == "2"  # empty version -> highest ready
    assert [o.name for o in response.outputs] == ["OUTPUT0", "OUTPUT1"]
    np.testing.assert_array_equal(decode(response, 0), a + b)
    np.testing.assert_array_equal(decode(response, 1), a - b)

    only_diff = infer_request("simple", {"INPUT0": a, "INPUT1": b}, version="1")
    only_diff.outputs.add(name="OUTPUT1")
    response = await stub.ModelInfer(only_diff)
    assert response.model_version == "1"
    assert [o.name for o in response.outputs] == ["OUTPUT1"]
    np.testing.assert_array_equal(decode(response), a - b)


async def test_unknown_request_parameters_are_ignored(stub) -> None:
    data = sample("FP32")
    request = infer_request("identity_fp32", {"INPUT0": data})
    request.parameters["priority"].uint64_param = 1
    request.parameters["something_new"].string_param = "x"
    response = await stub.ModelInfer(request)
    np.testing.assert_array_equal(decode(response), data)


async def test_model_without_batch_dimension(stub) -> None:
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    response = await stub.ModelInfer(infer_request("fixed", {"x": x}))
    np.testing.assert_array_equal(decode(response), 2 * x)
    await expect_error(
        stub.ModelInfer(infer_request("fixed", {"x": np.zeros((3, 3), np.float32)})),
        grpc.StatusCode.INVALID_ARGUMENT,
        "'x'",
        "[2, 3]",
    )


async def test_64_mib_request(stub) -> None:
    data = np.frombuffer(np.random.default_rng(0).bytes(64 * 1024 * 1024), dtype=np.uint8).reshape(1, -1)
    response = await stub.ModelInfer(infer_request("big", {"INPUT0": data}))
    assert response.outputs[0].shape == [1, data.size]
    assert response.raw_output_contents[0] == data.tobytes()


# ---------------------------------------------------------------------- errors


async def test_unknown_model_is_not_found(stub) -> None:
    request = infer_request("no_such_model", {"INPUT0": sample("FP32")})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.NOT_FOUND, "no_such_model")


async def test_unknown_version_is_not_found(stub) -> None:
    for version in ("7", "latest"):
        request = infer_request("identity_fp32", {"INPUT0": sample("FP32")}, version=version)
        await expect_error(stub.ModelInfer(request), grpc.StatusCode.NOT_FOUND, version)


async def test_wrong_input_name(stub) -> None:
    request = infer_request("identity_fp32", {"WRONG": sample("FP32")})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "'WRONG'", "INPUT0")


async def test_missing_input(stub) -> None:
    request = infer_request("simple", {"INPUT0": np.zeros((1, 16), np.int32)})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "'INPUT1'")


async def test_wrong_datatype(stub) -> None:
    request = infer_request("identity_fp32", {"INPUT0": sample("FP64")})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "FP64", "expects FP32")


async def test_wrong_shape(stub) -> None:
    request = infer_request("identity_fp32", {"INPUT0": np.zeros((2, 4), np.float32)})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "[2, 4]", "[-1, 3]")
    request = infer_request("identity_fp32", {"INPUT0": np.zeros((6,), np.float32)})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "dimensions")


async def test_raw_size_does_not_match_shape(stub) -> None:
    request = pb.ModelInferRequest(model_name="identity_fp32")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 3])
    request.raw_input_contents.append(b"\x00" * 20)
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "20 bytes", "24 bytes")


async def test_raw_count_does_not_match_inputs(stub) -> None:
    request = infer_request("simple", {"INPUT0": np.zeros((1, 16), np.int32), "INPUT1": np.zeros((1, 16), np.int32)})
    del request.raw_input_contents[1]
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "raw_input_contents")


async def test_mixed_raw_and_typed_contents(stub) -> None:
    a = np.zeros((1, 16), np.int32)
    request = infer_request("simple", {"INPUT0": a, "INPUT1": a})
    request.inputs[1].contents.int_contents.extend([0] * 16)
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "one or the other")


async def test_typed_contents_count_and_field(stub) -> None:
    request = pb.ModelInferRequest(model_name="identity_fp32")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[2, 3]).contents.fp32_contents.extend([1.0] * 5)
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "5 values", "needs 6")
    request = pb.ModelInferRequest(model_name="identity_fp32")
    request.inputs.add(name="INPUT0", datatype="FP32", shape=[1, 3]).contents.int_contents.extend([1, 2, 3])
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "fp32_contents")


async def test_unknown_datatype_and_negative_shape(stub) -> None:
    request = pb.ModelInferRequest(model_name="identity_fp32")
    request.inputs.add(name="INPUT0", datatype="FLOAT", shape=[1, 3])
    request.raw_input_contents.append(b"\x00" * 12)
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "FLOAT", "FP32")
    request = infer_request("identity_fp32", {"INPUT0": np.zeros((1, 3), np.float32)})
    request.inputs[0].shape[0] = -1
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "negative")


async def test_malformed_bytes_content(stub) -> None:
    request = pb.ModelInferRequest(model_name="identity_bytes")
    request.inputs.add(name="INPUT0", datatype="BYTES", shape=[1, 3])
    request.raw_input_contents.append(b"\x05\x00\x00\x00ab")
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "declares 5 bytes")


async def test_batch_above_max(stub) -> None:
    a = np.zeros((9, 16), np.int32)
    request = infer_request("simple", {"INPUT0": a, "INPUT1": a})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "batch size 9", "max_batch_size 8")


async def test_inputs_disagree_on_batch(stub) -> None:
    request = infer_request("simple", {"INPUT0": np.zeros((2, 16), np.int32), "INPUT1": np.zeros((3, 16), np.int32)})
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "batch size")


async def test_unknown_requested_output(stub) -> None:
    request = infer_request("identity_fp32", {"INPUT0": sample("FP32")})
    request.outputs.add(name="NOPE")
    await expect_error(stub.ModelInfer(request), grpc.StatusCode.INVALID_ARGUMENT, "'NOPE'", "OUTPUT0")


async def test_runtime_failure_is_internal_and_server_keeps_serving(stub) -> None:
    bad = infer_request("reshape5", {"x": np.zeros((1, 3), np.float32)})
    await expect_error(stub.ModelInfer(bad), grpc.StatusCode.INTERNAL, "reshape5:1", "onnxruntime")
    good = await stub.ModelInfer(infer_request("reshape5", {"x": np.zeros((1, 10), np.float32)}))
    assert list(good.outputs[0].shape) == [2, 5]
    data = sample("FP32")
    np.testing.assert_array_equal(decode(await stub.ModelInfer(infer_request("identity_fp32", {"INPUT0": data}))), data)


async def test_non_utf8_bytes_for_a_string_model(stub) -> None:
    data = np.array([[b"\xff\xfe", b"a", b"b"]], dtype=np.object_)
    await expect_error(
        stub.ModelInfer(infer_request("identity_bytes", {"INPUT0": data})), grpc.StatusCode.INVALID_ARGUMENT, "UTF-8"
    )


async def test_shared_memory_rpcs_explain_they_are_unsupported(stub) -> None:
    calls = (
        stub.SystemSharedMemoryRegister(pb.SystemSharedMemoryRegisterRequest(name="r")),
        stub.SystemSharedMemoryStatus(pb.SystemSharedMemoryStatusRequest()),
        stub.CudaSharedMemoryUnregister(pb.CudaSharedMemoryUnregisterRequest(name="r")),
    )
    for call in calls:
        await expect_error(call, grpc.StatusCode.UNIMPLEMENTED, "shared-memory", "raw_input_contents")
