"""Fuzzing the decode/validate path in-process: whatever the bytes, it fails only with our ServerError subclasses.

Anything else (a numpy ValueError, an OverflowError, a protobuf error) would reach the client as INTERNAL with a
traceback. Bounded to a few seconds; a longer run is documented in docs/reliability.md (FUZZ_EXAMPLES).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Callable
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oip.codec import CONTENTS_FIELD, DATATYPE_TO_DTYPE
from oip.v1 import grpc_service_pb2 as pb
from server.errors import ServerError
from server.grpc.request_wire import split_raw_contents
from server.grpc.tensors import decode_request, parse_infer_request
from server.types import InferRequest, ModelSignature, TensorSpec
from server.validation import validate_request

#: Examples per test; FUZZ_EXAMPLES=100000 for the long run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,  # no example database written into the checkout
    derandomize=EXAMPLES <= 1000,  # CI runs are reproducible; long runs explore
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 3)), TensorSpec("s", "BYTES", (-1,))),
    outputs=(TensorSpec("y", "FP32", (-1, 3)),),
    max_batch_size=8,
)
DATATYPES = [*DATATYPE_TO_DTYPE, "BF16", "FP8", "", "fp32"]
SHAPES = st.one_of(
    st.lists(st.integers(0, 4), max_size=4),  # ordinary
    st.lists(st.sampled_from([0, 1, 3, 2**31, 2**40, 2**62, 2**63 - 1]), max_size=5),  # huge beside a zero
    st.lists(st.integers(0, 1), min_size=60, max_size=70),  # around numpy's 64 dimensions
    st.lists(st.integers(-2, 4), max_size=4),  # negative
)


def _decode_and_validate(raw: bytes) -> None:
    """The server's path from wire bytes to an admitted request; ServerError is a valid outcome."""
    try:
        parsed = parse_infer_request(raw)
        request = decode_request(parsed.message, parsed.blobs)
        validate_request(request, SIGNATURE, "m:1")
    except ServerError:
        return
    for array in request.inputs.values():
        assert isinstance(array, np.ndarray)


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def _wire_fields(draw: st.DrawFn) -> bytes:
    """Protobuf-shaped bytes: tags of ModelInferRequest's field numbers with payloads of any wire type."""
    parts = []
    for _ in range(draw(st.integers(0, 8))):
        field, wire = draw(st.integers(1, 8)), draw(st.sampled_from([0, 1, 2, 5, 3, 7]))
        parts.append(_varint(field << 3 | wire))
        if wire == 0:
            parts.append(_varint(draw(st.integers(0, 2**64 - 1))))
        elif wire == 1:
            parts.append(draw(st.binary(min_size=8, max_size=8)))
        elif wire == 5:
            parts.append(draw(st.binary(min_size=4, max_size=4)))
        elif wire == 2:
            body = draw(st.binary(max_size=64))
            parts.append(_varint(draw(st.sampled_from([len(body), len(body) + 1, 2**32]))) + body)
    return b"".join(parts)


def _typed(tensor: pb.ModelInferRequest.InferInputTensor, datatype: str, count: int, draw: st.DrawFn) -> None:
    field = CONTENTS_FIELD.get(datatype, draw(st.sampled_from(sorted(set(CONTENTS_FIELD.values())))))
    values: Any
    if field == "bytes_contents":
        values = draw(st.lists(st.binary(max_size=8), max_size=count + 1))
    elif field == "bool_contents":
        values = draw(st.lists(st.booleans(), max_size=count + 1))
    elif field.startswith("fp"):
        values = draw(st.lists(st.floats(width=32 if field == "fp32_contents" else 64), max_size=count + 1))
    else:
        low, high = (0, 2**32 - 1) if field == "uint_contents" else (-(2**31), 2**31 - 1)
        if field == "uint64_contents":
            low, high = 0, 2**64 - 1
        elif field == "int64_contents":
            low, high = -(2**63), 2**63 - 1
        values = draw(st.lists(st.integers(low, high), max_size=count + 1))
    getattr(tensor.contents, field).extend(values)


@st.composite
def _requests(draw: st.DrawFn) -> bytes:
    """Well-formed ModelInferRequests with random names, datatypes, shapes and contents."""
    request = pb.ModelInferRequest(model_name="m", id=draw(st.text(max_size=4)))
    raw = draw(st.booleans())
    for _ in range(draw(st.integers(0, 3))):
        datatype = draw(st.sampled_from(DATATYPES))
        shape = draw(SHAPES)
        name = draw(st.sampled_from(["x", "s", "y", ""]))
        tensor = request.inputs.add(name=name, datatype=datatype, shape=shape)
        count = min(abs(math.prod(shape)), 16)  # contents near the right size, never huge
        if raw:
            itemsize = DATATYPE_TO_DTYPE.get(datatype, np.dtype("u1")).itemsize
            fitting = draw(st.binary(min_size=count * itemsize, max_size=count * itemsize))
            request.raw_input_contents.append(draw(st.one_of(st.just(fitting), st.binary(max_size=32))))
        else:
            _typed(tensor, datatype, count, draw)
    for name in draw(st.lists(st.sampled_from(["y", "z"]), max_size=2)):
        request.outputs.add(name=name)
    if draw(st.booleans()):
        request.raw_input_contents.append(b"\x00" * 4)  # one blob too many, or raw beside typed
    return request.SerializeToString()


@FUZZ
@given(st.binary(max_size=256))
def test_random_bytes_fail_only_with_server_errors(raw: bytes) -> None:
    _decode_and_validate(raw)


@FUZZ
@given(_wire_fields())
def test_protobuf_shaped_bytes_fail_only_with_server_errors(raw: bytes) -> None:
    _decode_and_validate(raw)


@FUZZ
@given(_requests())
def test_random_requests_fail_only_with_server_errors(raw: bytes) -> None:
    _decode_and_validate(raw)


@FUZZ
@given(_requests(), st.data())
def test_mutated_requests_fail_only_with_server_errors(raw: bytes, data: st.DataObject) -> None:
    mutated = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4))):
        if not mutated:
            break
        index = data.draw(st.integers(0, len(mutated) - 1))
        mutated[index] = data.draw(st.integers(0, 255))
    _decode_and_validate(bytes(mutated) + data.draw(st.sampled_from([b"", struct.pack("<I", 7)])))


def _outcome(decode: Callable[[], InferRequest]) -> tuple[str, Any]:
    """("ok", the decoded request) or ("refused", None): protobuf's and our own errors count alike."""
    try:
        return "ok", decode()
    except (DecodeError, ServerError):
        return "refused", None


def _split_agrees_with_protobuf(raw: bytes) -> None:
    """Decoding with the blobs split off (the path of large messages) gives what protobuf's path gives."""
    split = split_raw_contents(raw)
    if split is None:
        return
    rest, blobs = split
    kind, via_protobuf = _outcome(lambda: decode_request(pb.ModelInferRequest.FromString(raw)))
    split_kind, via_split = _outcome(lambda: decode_request(pb.ModelInferRequest.FromString(rest), blobs))
    assert split_kind == kind
    if kind == "ok":
        assert (via_split.model_name, via_split.request_id) == (via_protobuf.model_name, via_protobuf.request_id)
        assert via_split.inputs.keys() == via_protobuf.inputs.keys()
        for name, array in via_split.inputs.items():
            assert array.dtype == via_protobuf.inputs[name].dtype
            np.testing.assert_array_equal(array, via_protobuf.inputs[name])


@FUZZ
@given(_requests(), st.data())
def test_the_split_path_agrees_with_protobuf(raw: bytes, data: st.DataObject) -> None:
    _split_agrees_with_protobuf(raw)
    mutated = bytearray(raw)
    if mutated:
        mutated[data.draw(st.integers(0, len(mutated) - 1))] = data.draw(st.integers(0, 255))
    _split_agrees_with_protobuf(bytes(mutated))
