"""server.grpc.registration: every RPC of the service is registered with the right (de)serializers."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.registration import BYTES_RESPONSE_METHODS, SERVICE, method_handlers


class _Servicer:
    """Answers every attribute with a distinct coroutine function named after it."""

    def __getattr__(self, name: str) -> Any:
        async def behaviour(request: Any, context: Any) -> Any:
            return name

        return behaviour


def test_every_method_of_the_service_has_a_handler() -> None:
    handlers = method_handlers(_Servicer())
    assert set(handlers) == {method.name for method in SERVICE.methods}
    assert SERVICE.full_name == "inference.GRPCInferenceService"


def test_inference_methods_answer_with_bytes_and_others_with_messages() -> None:
    handlers = method_handlers(_Servicer())
    for name in BYTES_RESPONSE_METHODS:
        assert handlers[name].response_serializer is None
        assert handlers[name].request_deserializer == pb.ModelInferRequest.FromString
    ready = handlers["ServerReady"]
    assert ready.response_serializer is not None
    assert ready.response_serializer(pb.ServerReadyResponse(ready=True)) == b"\x08\x01"
    assert ready.request_deserializer is not None
    assert ready.request_deserializer(b"") == pb.ServerReadyRequest()


def test_streaming_shape_of_each_method() -> None:
    handlers = method_handlers(_Servicer())
    assert handlers["ModelStreamInfer"].request_streaming and handlers["ModelStreamInfer"].response_streaming
    assert not handlers["ModelInfer"].request_streaming and not handlers["ModelInfer"].response_streaming


def test_a_servicer_missing_a_method_is_refused_at_registration() -> None:
    class Partial:
        async def ModelInfer(self, request: Any, context: Any) -> bytes:
            return b""

    with pytest.raises(AttributeError):
        method_handlers(Partial())


def test_handlers_are_grpc_method_handlers() -> None:
    for handler in method_handlers(_Servicer()).values():
        assert isinstance(handler, grpc.RpcMethodHandler)
