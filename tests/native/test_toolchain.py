"""The native extension's toolchain (docs/native-data-plane.md, milestone 1), where `make native` built it.

The C++ classes generated from our .proto files parse what Python's protobuf writes, gRPC C++ and grpcio live in
one process, and a bad message is a ValueError, not a crash.
"""

from __future__ import annotations

from types import ModuleType

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oip.v1 import grpc_service_pb2 as pb


def summary(request: pb.ModelInferRequest) -> tuple[str, str, str, str, str]:
    names = ",".join(tensor.name for tensor in request.inputs)
    sizes = ",".join(str(len(blob)) for blob in request.raw_input_contents)
    return request.model_name, request.model_version, request.id, names, sizes


def test_built_against_debians_grpc_beside_grpcio(native: ModuleType) -> None:
    assert native.grpc_version().split(".")[0] == "1"
    assert grpc.__version__  # grpcio's own core is loaded in the same process


@settings(max_examples=200, deadline=None, database=None)
@given(
    name=st.text(max_size=20),
    version=st.text(alphabet="0123456789", max_size=3),
    request_id=st.text(max_size=20),
    blobs=st.lists(st.binary(max_size=64), max_size=4),
)
def test_cpp_parses_what_python_writes(
    native: ModuleType, name: str, version: str, request_id: str, blobs: list[bytes]
) -> None:
    request = pb.ModelInferRequest(model_name=name, model_version=version, id=request_id)
    for index, blob in enumerate(blobs):
        request.inputs.add(name=f"in{index}", datatype="UINT8", shape=[1, len(blob)])
        request.raw_input_contents.append(blob)
    assert native.summarize_request(request.SerializeToString()) == summary(request)


def test_a_bad_message_is_a_value_error(native: ModuleType) -> None:
    with pytest.raises(ValueError, match="not a valid ModelInferRequest"):
        native.summarize_request(b"\x0a\xff\xff")
