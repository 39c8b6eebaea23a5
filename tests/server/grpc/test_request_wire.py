"""server.grpc.request_wire: a large request's tensors stay in the wire bytes, and nothing else changes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.request_wire import SPLIT_MIN_BYTES, split_raw_contents
from server.grpc.tensors import decode_request, parse_infer_request


def rich_request(blob_sizes: tuple[int, ...]) -> pb.ModelInferRequest:
    """Every kind of top-level field ModelInferRequest has, interleaved with the raw blobs."""
    request = pb.ModelInferRequest(model_name="m", model_version="3", id="req-1")
    request.parameters["priority"].int64_param = 2
    request.parameters["sticky"].string_param = "user-7"
    request.parameters["flag"].bool_param = True
    for index, size in enumerate(blob_sizes):
        request.inputs.add(name=f"in{index}", datatype="UINT8", shape=[1, size])
        request.raw_input_contents.append(bytes([index % 256]) * size)
    request.outputs.add(name="out0").parameters["classification"].int64_param = 2
    return request


def without_blobs(request: pb.ModelInferRequest) -> pb.ModelInferRequest:
    copy = pb.ModelInferRequest()
    copy.CopyFrom(request)
    del copy.raw_input_contents[:]
    return copy


@pytest.mark.parametrize("blob_sizes", [(1,), (0, 5), (300, 70_000, 3)])
def test_split_gives_the_message_without_its_blobs_and_the_blobs_as_views(blob_sizes: tuple[int, ...]) -> None:
    request = rich_request(blob_sizes)
    raw = request.SerializeToString()
    split = split_raw_contents(raw)
    assert split is not None
    rest, blobs = split
    assert pb.ModelInferRequest.FromString(rest) == without_blobs(request)
    assert [bytes(blob) for blob in blobs] == list(request.raw_input_contents)
    assert all(blob.obj is raw for blob in blobs)  # views of the wire bytes, not copies


def test_fields_in_any_order_and_unknown_fields_survive() -> None:
    # Unknown fields of every wire type (varint 99, fixed64 100, fixed32 101) and the blob before the inputs.
    unknown = b"\x98\x06\x2a" + b"\xa1\x06" + b"\x00" * 8 + b"\xad\x06" + b"\x00" * 4
    blob_first = b"\x3a\x03abc" + pb.ModelInferRequest(model_name="m").SerializeToString() + unknown
    split = split_raw_contents(blob_first)
    assert split is not None
    rest, blobs = split
    assert pb.ModelInferRequest.FromString(rest).model_name == "m"
    assert [bytes(blob) for blob in blobs] == [b"abc"]
    assert pb.ModelInferRequest.FromString(rest).SerializeToString() == pb.ModelInferRequest.FromString(
        blob_first
    ).SerializeToString().replace(b"\x3a\x03abc", b"")


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # no blobs
        pb.ModelInferRequest(model_name="m").SerializeToString(),  # no blobs
        b"\x3a\x05abc",  # a blob longer than the message
        b"\x3a\x03abc\x0a",  # a field cut after its tag
        b"\x3a\x03abc\x0b",  # a group (wire type 3)
        b"\x3a\x03abc" + b"\xff" * 11,  # a varint past ten bytes
        b"\x3a\x03abc\xa1\x06\x00",  # a fixed64 cut short
    ],
)
def test_what_the_scan_does_not_expect_goes_to_protobuf(raw: bytes) -> None:
    assert split_raw_contents(raw) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_split_or_go_to_protobuf_without_raising(raw: bytes) -> None:
    split = split_raw_contents(b"\x3a\x01x" + raw)
    if split is not None:
        rest, blobs = split
        assert len(rest) + sum(len(blob) for blob in blobs) <= len(raw) + 3


def test_a_large_request_decodes_to_views_of_its_wire_bytes() -> None:
    request = rich_request((SPLIT_MIN_BYTES, 12))
    raw = request.SerializeToString()
    parsed = parse_infer_request(raw)
    assert parsed.blobs is not None  # split
    assert parsed.message == without_blobs(request)
    decoded = decode_request(parsed.message, parsed.blobs)
    expected = decode_request(pb.ModelInferRequest.FromString(raw))
    assert decoded.inputs.keys() == expected.inputs.keys()
    for name, array in decoded.inputs.items():
        np.testing.assert_array_equal(array, expected.inputs[name])
    wire = np.frombuffer(raw, np.uint8)
    assert np.shares_memory(decoded.inputs["in0"], wire)  # no copy of the tensor


def test_a_small_request_is_parsed_by_protobuf_alone() -> None:
    request = rich_request((16,))
    parsed = parse_infer_request(request.SerializeToString())
    assert parsed.blobs is None
    assert parsed.message == request
