"""Request building and response decoding, checked against the shared oip.codec encoding."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from clients import _convert, _operations
from clients.results import ModelMetadata, RepositoryEntry, ServerMetadata, TensorMetadata
from oip import codec
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import model_config_pb2

INPUTS: dict[str, npt.NDArray[Any]] = {
    "features": np.arange(24, dtype=np.float32).reshape(2, 12),
    "ids": np.array([[1, -2, 3]], dtype=np.int64),
    "mask": np.array([True, False]),
    "half": np.array([1.5, -2.0], dtype=np.float16),
    "text": np.array(["héllo", ""]),
    "blobs": np.array([b"\x00\x01", b"xyz"], dtype=object),
    "scalar": np.array(7, dtype=np.uint8),
}
EXPECTED_DATATYPES = {
    "features": "FP32",
    "ids": "INT64",
    "mask": "BOOL",
    "half": "FP16",
    "text": "BYTES",
    "blobs": "BYTES",
    "scalar": "UINT8",
}


def build(**kwargs: Any) -> pb.ModelInferRequest:
    return _convert.build_infer_request("fraud", INPUTS, **kwargs)


# ------------------------------------------------------------ requests


def test_inputs_are_raw_contents_in_order() -> None:
    request = build()
    assert [tensor.name for tensor in request.inputs] == list(INPUTS)
    assert len(request.raw_input_contents) == len(INPUTS)
    for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
        array = INPUTS[tensor.name]
        assert tensor.datatype == EXPECTED_DATATYPES[tensor.name]
        assert tuple(tensor.shape) == array.shape
        assert raw == codec.array_to_raw(array)
        assert not tensor.HasField("contents")


def test_raw_contents_decode_back_to_the_inputs() -> None:
    request = build()
    for tensor, raw in zip(request.inputs, request.raw_input_contents, strict=True):
        decoded = codec.raw_to_array(raw, tensor.datatype, tensor.shape)
        expected = INPUTS[tensor.name]
        if tensor.datatype == "BYTES":
            expected = np.vectorize(lambda item: item if isinstance(item, bytes) else item.encode(), otypes=[object])(
                expected
            )
        np.testing.assert_array_equal(decoded, expected)


def test_big_endian_and_strided_arrays_are_sent_little_endian_row_major() -> None:
    array = np.arange(12, dtype=">f4").reshape(3, 4).T
    request = _convert.build_infer_request("m", {"x": array})
    assert request.inputs[0].datatype == "FP32"
    assert tuple(request.inputs[0].shape) == (4, 3)
    assert request.raw_input_contents[0] == array.astype("<f4").tobytes(order="C")


def test_bytes_inputs_use_the_length_prefix() -> None:
    request = _convert.build_infer_request("m", {"s": np.array(["ab", "c"])})
    assert request.raw_input_contents[0] == b"\x02\x00\x00\x00ab\x01\x00\x00\x00c"


def test_model_version_and_id() -> None:
    assert (build().model_name, build().model_version, build().id) == ("fraud", "", "")
    assert build(version=2).model_version == "2"
    assert build(version="1", request_id="req-7").model_version == "1"
    assert build(request_id="req-7").id == "req-7"


def test_requested_outputs() -> None:
    assert [output.name for output in build(outputs=["scores", "label"]).outputs] == ["scores", "label"]
    assert len(build(outputs=None).outputs) == 0
    assert len(build(outputs=[]).outputs) == 0


def test_a_single_output_name_string_is_rejected() -> None:
    with pytest.raises(TypeError, match="sequence of output names"):
        build(outputs="scores")


def test_parameters_map_to_the_matching_oneof_field() -> None:
    request = build(parameters={"flag": True, "priority": 3, "threshold": 0.25, "tag": "blue", "zero": 0})
    params = request.parameters
    assert (params["flag"].WhichOneof("parameter_choice"), params["flag"].bool_param) == ("bool_param", True)
    assert (params["priority"].WhichOneof("parameter_choice"), params["priority"].int64_param) == ("int64_param", 3)
    assert params["threshold"].WhichOneof("parameter_choice") == "double_param"
    assert params["threshold"].double_param == 0.25
    assert (params["tag"].WhichOneof("parameter_choice"), params["tag"].string_param) == ("string_param", "blue")
    assert params["zero"].WhichOneof("parameter_choice") == "int64_param"
    assert len(build().parameters) == 0


def test_unsupported_parameter_type_is_rejected() -> None:
    with pytest.raises(TypeError, match="bool, int, float or str"):
        build(parameters={"bad": [1, 2]})


def test_dtype_without_a_datatype_is_rejected() -> None:
    with pytest.raises(codec.TensorCodecError):
        _convert.build_infer_request("m", {"z": np.zeros(2, dtype=np.complex64)})


# ----------------------------------------------------------- responses


def raw_response(outputs: dict[str, npt.NDArray[Any]]) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name="m", model_version="1")
    for name, array in outputs.items():
        response.outputs.add(name=name, datatype=codec.datatype_for(array.dtype), shape=array.shape)
        response.raw_output_contents.append(codec.array_to_raw(array))
    return response


def typed_response(outputs: dict[str, npt.NDArray[Any]]) -> pb.ModelInferResponse:
    response = pb.ModelInferResponse(model_name="m", model_version="1")
    for name, array in outputs.items():
        tensor = response.outputs.add(name=name, datatype=codec.datatype_for(array.dtype), shape=array.shape)
        field, values = codec.array_to_contents(array)
        getattr(tensor.contents, field).extend(values)
    return response


OUTPUTS: dict[str, npt.NDArray[Any]] = {
    "scores": np.array([[0.25, 0.75], [0.5, 0.5]], dtype=np.float32),
    "label": np.array([1, 0], dtype=np.int64),
    "flags": np.array([True, False, True]),
    "small": np.array([[-3, 4]], dtype=np.int16),
    "wide": np.array([2**40], dtype=np.uint64),
    "names": np.array([b"cat", b"", b"\xff"], dtype=object),
}


@pytest.mark.parametrize("make", [raw_response, typed_response], ids=["raw", "typed"])
def test_response_outputs_decode_with_dtype_and_shape(make: Any) -> None:
    decoded = _convert.parse_infer_response(make(OUTPUTS))
    assert list(decoded) == list(OUTPUTS)
    for name, expected in OUTPUTS.items():
        assert decoded[name].dtype == expected.dtype
        assert decoded[name].shape == expected.shape
        np.testing.assert_array_equal(decoded[name], expected)


def test_raw_outputs_are_read_only_views() -> None:
    decoded = _convert.parse_infer_response(raw_response({"scores": OUTPUTS["scores"]}))
    assert not decoded["scores"].flags.writeable


def test_raw_fp16_output_decodes() -> None:
    half = np.array([0.5, -1.0], dtype=np.float16)
    np.testing.assert_array_equal(_convert.parse_infer_response(raw_response({"h": half}))["h"], half)


def test_typed_fp16_output_cannot_decode() -> None:
    response = pb.ModelInferResponse()
    response.outputs.add(name="h", datatype="FP16", shape=[1])
    with pytest.raises(codec.TensorCodecError, match="raw content"):
        _convert.parse_infer_response(response)


def test_raw_count_must_match_outputs() -> None:
    response = raw_response({"a": OUTPUTS["label"], "b": OUTPUTS["label"]})
    del response.raw_output_contents[1]
    with pytest.raises(codec.TensorCodecError, match="2 outputs but 1 raw_output_contents"):
        _convert.parse_infer_response(response)


def test_empty_response_is_an_empty_dict() -> None:
    assert _convert.parse_infer_response(pb.ModelInferResponse()) == {}


# ------------------------------------------------------------- metadata


def test_model_metadata() -> None:
    response = pb.ModelMetadataResponse(name="fraud", versions=["1", "2"], platform="onnxruntime_onnx")
    response.inputs.add(name="features", datatype="FP32", shape=[-1, 12])
    response.outputs.add(name="scores", datatype="FP32", shape=[-1, 2])
    response.outputs.add(name="label", datatype="INT64", shape=[-1])
    assert _convert.parse_model_metadata(response) == ModelMetadata(
        name="fraud",
        versions=("1", "2"),
        platform="onnxruntime_onnx",
        inputs=(TensorMetadata("features", "FP32", (-1, 12)),),
        outputs=(TensorMetadata("scores", "FP32", (-1, 2)), TensorMetadata("label", "INT64", (-1,))),
    )


def test_server_metadata_and_repository_index() -> None:
    server = pb.ServerMetadataResponse(name="oip", version="0.1.0", extensions=["model_repository", "statistics"])
    assert _convert.parse_server_metadata(server) == ServerMetadata("oip", "0.1.0", ("model_repository", "statistics"))
    index = pb.RepositoryIndexResponse()
    index.models.add(name="fraud", version="1", state="READY")
    index.models.add(name="broken", version="1", state="UNAVAILABLE", reason="bad config")
    assert _convert.parse_repository_index(index) == [
        RepositoryEntry("fraud", "1", "READY", ""),
        RepositoryEntry("broken", "1", "UNAVAILABLE", "bad config"),
    ]


# ----------------------------------------------------------- operations


def test_operations_name_the_rpc_and_carry_the_request() -> None:
    load = _operations.load_model("fraud")
    assert load.path == "/inference.GRPCInferenceService/RepositoryModelLoad"
    assert load.request == pb.RepositoryModelLoadRequest(model_name="fraud")
    assert load.parse(pb.RepositoryModelLoadResponse()) is None
    assert _operations.unload_model("x").request == pb.RepositoryModelUnloadRequest(model_name="x")
    assert _operations.model_ready("fraud", 2).request == pb.ModelReadyRequest(name="fraud", version="2")
    assert _operations.repository_index(True).request == pb.RepositoryIndexRequest(ready=True)
    assert _operations.server_live().parse(pb.ServerLiveResponse(live=True)) is True


def test_config_and_statistics_return_messages() -> None:
    config = model_config_pb2.ModelConfig(name="fraud", max_batch_size=64)
    parsed = _operations.model_config("fraud", None).parse(pb.ModelConfigResponse(config=config))
    assert parsed == config
    stats = pb.ModelStatisticsResponse(model_stats=[pb.ModelStatistics(name="fraud", version="1")])
    assert [s.name for s in _operations.model_statistics("", None).parse(stats)] == ["fraud"]


def test_infer_operation_uses_the_request_builder() -> None:
    operation = _operations.infer_result(
        "fraud", INPUTS, version="1", outputs=["label"], request_id="r", parameters={"priority": 1}
    )
    assert operation.method == "ModelInfer"
    assert operation.request == build(version="1", outputs=["label"], request_id="r", parameters={"priority": 1})
    response = raw_response({"scores": OUTPUTS["scores"]})
    response.model_name, response.model_version, response.id = "fraud", "2", "r"
    result = operation.parse(response)
    assert (result.model_name, result.model_version, result.request_id) == ("fraud", "2", "r")
    np.testing.assert_array_equal(result.outputs["scores"], OUTPUTS["scores"])
