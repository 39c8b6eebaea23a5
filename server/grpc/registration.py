"""Registers the GRPCInferenceService methods on a grpc.aio server.

Every method uses its generated message classes, except the inference methods,
whose handlers return already-serialized bytes (see `response_wire`): those
responses skip protobuf message objects on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.message_factory import GetMessageClass

from oip.v1 import grpc_service_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
#: Methods whose handlers answer with wire bytes rather than message objects.
BYTES_RESPONSE_METHODS = frozenset({"ModelInfer", "ModelStreamInfer"})


def _serializer(name: str, response_class: Any) -> Callable[[Any], bytes] | None:
    return None if name in BYTES_RESPONSE_METHODS else response_class.SerializeToString


def method_handlers(servicer: object) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """One handler per RPC of the service, bound to the servicer's method of the same name."""
    handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {}
    for method in SERVICE.methods:
        behaviour = getattr(servicer, method.name)
        deserializer = GetMessageClass(method.input_type).FromString
        serializer = _serializer(method.name, GetMessageClass(method.output_type))
        if method.client_streaming and method.server_streaming:
            handler = grpc.stream_stream_rpc_method_handler(behaviour, deserializer, serializer)
        elif not method.client_streaming and not method.server_streaming:
            handler = grpc.unary_unary_rpc_method_handler(behaviour, deserializer, serializer)
        else:  # the protocol has none: refuse to register something half-wired
            raise ValueError(f"{SERVICE.full_name}/{method.name}: only unary and bidirectional RPCs are supported")
        handlers[method.name] = handler
    return handlers


def register_inference_service(servicer: object, server: grpc.aio.Server) -> None:
    """Add the service to a not yet started server."""
    handlers = method_handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(SERVICE.full_name, handlers)
