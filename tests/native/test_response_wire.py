"""The native path writes ModelInferResponse bytes by hand (native/src/response_wire.cpp): they must be exactly
what protobuf writes for the same response, so that no client can tell the frontends apart."""

from __future__ import annotations

from types import ModuleType

import grpc
from hypothesis import given, settings
from hypothesis import strategies as st

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.response_wire import length_delimited

names = st.text(min_size=0, max_size=12)
tensors = st.tuples(
    names,
    st.sampled_from(["FP32", "INT64", "BOOL", "UINT8", "FP16"]),
    st.lists(st.integers(min_value=0, max_value=2**40), max_size=4),
    st.binary(max_size=64),
)


@settings(max_examples=300, deadline=None, database=None)
@given(model=names, version=names, request_id=names, outputs=st.lists(tensors, max_size=4))
def test_the_bytes_are_protobufs(
    native: ModuleType, model: str, version: str, request_id: str, outputs: list[tuple[str, str, list[int], bytes]]
) -> None:
    expected = pb.ModelInferResponse(model_name=model, model_version=version, id=request_id)
    for name, datatype, shape, raw in outputs:
        expected.outputs.add(name=name, datatype=datatype, shape=shape)
        expected.raw_output_contents.append(raw)
    written = native.encode_response(model, version, request_id, outputs)
    assert written == expected.SerializeToString()
    assert pb.ModelInferResponse.FromString(written) == expected


@settings(max_examples=200, deadline=None, database=None)
@given(model=names, request_id=names, outputs=st.lists(tensors, max_size=3))
def test_a_streamed_response_is_the_bytes_python_writes(
    native: ModuleType, model: str, request_id: str, outputs: list[tuple[str, str, list[int], bytes]]
) -> None:
    response = native.encode_response(model, "1", request_id, outputs)
    written = native.encode_stream_response(response)
    assert written == length_delimited(b"\x12", response)  # server/grpc/streaming.py's framing
    assert pb.ModelStreamInferResponse.FromString(written).infer_response == pb.ModelInferResponse.FromString(response)


@settings(max_examples=200, deadline=None, database=None)
@given(code=st.sampled_from(list(grpc.StatusCode)), details=names, model=names, version=names, request_id=names)
def test_a_streamed_failure_is_the_protobuf_python_writes(
    native: ModuleType, code: grpc.StatusCode, details: str, model: str, version: str, request_id: str
) -> None:
    expected = pb.ModelStreamInferResponse(
        error_message=f"{code.name}: {details}",
        infer_response=pb.ModelInferResponse(model_name=model, model_version=version, id=request_id),
    )
    written = native.encode_stream_error(code.value[0], details, model, version, request_id)
    assert written == expected.SerializeToString()
