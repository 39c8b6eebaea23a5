"""Registers gRPC services on a grpc.aio server as generic handlers built from their descriptors.

Only generic handlers, never "registered methods": grpc.aio's accept loop keeps one pending call
future per registered method and runs asyncio.wait over all of them for every incoming RPC. The
generated helpers register each method (health 3, reflection 1), and with the inference service's
17 methods that had tripled the server's CPU work per request (cProfile, callgrind).

The inference methods are registered without a serializer or deserializer: they answer with
already-serialized bytes (see `response_wire`), and they parse the request themselves, so that a
message that does not decode is INVALID_ARGUMENT through our error mapping (grpc's own deserializer
would answer UNKNOWN and log a traceback for every such message).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message_factory import GetMessageClass

from oip.v1 import grpc_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
#: Methods whose handlers take and answer wire bytes rather than message objects.
WIRE_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})

_HANDLER_KINDS: dict[tuple[bool, bool], Callable[..., grpc.RpcMethodHandler[Any, Any]]] = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def method_handlers(
    servicer: object, service: ServiceDescriptor = SERVICE, wire_methods: frozenset[str] = WIRE_METHODS
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per RPC of `service`, bound to the servicer's method of the same name."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in service.methods:
        behaviour = getattr(servicer, method.name)
        wire = method.name in wire_methods
        deserializer = None if wire else GetMessageClass(method.input_type).FromString
        serializer = None if wire else GetMessageClass(method.output_type).SerializeToString
        kind = _HANDLER_KINDS[(method.client_streaming, method.server_streaming)]
        handlers[method.name] = kind(behaviour, deserializer, serializer)
    return handlers


def generic_handler(
    servicer: object, service: ServiceDescriptor = SERVICE, wire_methods: frozenset[str] = WIRE_METHODS
) -> grpc.GenericRpcHandler:
    """`service` served by `servicer`, ready for `server.add_generic_rpc_handlers`."""
    return grpc.method_handlers_generic_handler(service.full_name, method_handlers(servicer, service, wire_methods))
