"""server.grpc.response_wire: the hand-written encoder gives exactly protobuf's bytes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from oip import codec
from oip.v1 import grpc_service_pb2 as pb
from server.grpc.response_wire import ResponseWriter, varint
from server.types import InferResponse


def _reference(response: InferResponse) -> bytes:
    """What the protobuf library serializes for the same response."""
    tensor = pb.ModelInferResponse.InferOutputTensor
    message = pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.request_id,
        outputs=[
            tensor(name=name, datatype=codec.datatype_for(array.dtype), shape=array.shape)
            for name, array in response.outputs.items()
        ],
        raw_output_contents=[codec.array_to_raw(array) for array in response.outputs.values()],
    )
    return message.SerializeToString()


def _check(outputs: dict[str, Any], name: str = "model", version: str = "3", request_id: str = "") -> None:
    response = InferResponse(model_name=name, model_version=version, outputs=outputs, request_id=request_id)
    writer = ResponseWriter()
    encoded = writer.encode(response)
    assert encoded == _reference(response)
    assert writer.encode(response) == encoded  # cached headers give the same bytes
    assert ResponseWriter(max_cached=0).encode(response) == encoded  # past the cache bound: the same bytes
    parsed = pb.ModelInferResponse.FromString(encoded)
    for index, (output_name, array) in enumerate(outputs.items()):
        assert parsed.outputs[index].name == output_name
        assert tuple(parsed.outputs[index].shape) == array.shape
        decoded = codec.raw_to_array(parsed.raw_output_contents[index], parsed.outputs[index].datatype, array.shape)
        np.testing.assert_array_equal(decoded, array)


@pytest.mark.parametrize("datatype", [d for d in codec.DATATYPE_TO_DTYPE if d != "BYTES"])
def test_every_fixed_size_datatype(datatype: str) -> None:
    dtype = codec.DATATYPE_TO_DTYPE[datatype]
    _check({"y": np.arange(6).astype(dtype).reshape(2, 3)})


def test_bytes_output_and_several_outputs_keep_their_order() -> None:
    text = np.array([b"a", b"", "snow \u2603".encode()], dtype=np.object_)
    _check({"labels": text, "scores": np.ones((3, 2), np.float32), "ids": np.arange(3, dtype=np.int64)})


def test_scalars_empty_tensors_and_large_dimensions() -> None:
    _check({"scalar": np.array(2.5, np.float64)})
    _check({"empty": np.zeros((0, 4), np.float32)})
    _check({"wide": np.zeros((1, 300), np.uint8), "tall": np.zeros((70_000, 1), np.int8)})


def test_non_contiguous_and_big_endian_arrays_are_written_row_major_little_endian() -> None:
    base = np.arange(24, dtype=np.float32).reshape(4, 6)
    _check({"columns": base[:, ::2]})
    _check({"transposed": base.T})
    _check({"big": np.arange(5, dtype=">i4")})


def test_identity_fields_including_empty_and_non_ascii() -> None:
    outputs = {"y": np.zeros((1, 1), np.float32)}
    _check(outputs, name="", version="", request_id="")
    _check(outputs, name="mod\u00e8le", version="12", request_id="req-\u00e9-" + "x" * 300)


def test_a_large_output_needs_a_multi_byte_length() -> None:
    _check({"big": np.random.default_rng(0).normal(size=(64, 1024)).astype(np.float32)})


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 16_383, 16_384, 2**31, 2**63 - 1])
def test_varint_matches_protobuf(value: int) -> None:
    message = pb.ModelInferResponse.InferOutputTensor(shape=[value])
    # field 3, packed: tag, payload length, then the varint itself
    assert message.SerializeToString() == b"\x1a" + varint(len(varint(value))) + varint(value)


def test_negative_varint_takes_ten_bytes_like_protobuf() -> None:
    message = pb.ModelInferResponse.InferOutputTensor(shape=[-1])
    assert message.SerializeToString() == b"\x1a\x0a" + varint(-1)
