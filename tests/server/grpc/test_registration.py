"""server.grpc.registration: every RPC of the service is registered with the right (de)serializers."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.registration import SERVICE, WIRE_METHODS, generic_handler, method_handlers


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


def test_inference_methods_take_and_answer_bytes_and_others_messages() -> None:
    handlers = method_handlers(_Servicer())
    for name in WIRE_METHODS:
        assert handlers[name].response_serializer is None
        assert handlers[name].request_deserializer is None  # parsed by the servicer: bad bytes are INVALID_ARGUMENT
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


def test_every_cardinality_of_other_services_is_handled() -> None:
    health = method_handlers(_Servicer(), health_pb2.DESCRIPTOR.services_by_name["Health"], frozenset())
    assert not health["Check"].request_streaming and not health["Check"].response_streaming
    assert not health["Watch"].request_streaming and health["Watch"].response_streaming
    reflection = method_handlers(
        _Servicer(), reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"], frozenset()
    )
    info = reflection["ServerReflectionInfo"]
    assert info.request_streaming and info.response_streaming
    assert info.response_serializer is not None


class _Details:
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def test_the_generic_handler_resolves_full_method_names() -> None:
    handler = generic_handler(_Servicer())
    assert handler.service(_Details("/inference.GRPCInferenceService/ModelInfer")) is not None  # type: ignore[arg-type]
    assert handler.service(_Details("/inference.GRPCInferenceService/Nope")) is None  # type: ignore[arg-type]
