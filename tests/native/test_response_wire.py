"""The native path writes ModelInferResponse bytes by hand (native/src/response_wire.cpp): they must be exactly
what protobuf writes for the same response, so that no client can tell the frontends apart."""

from __future__ import annotations

from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from oip.v1 import grpc_service_pb2 as pb

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
