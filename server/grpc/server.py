"""Builds the gRPC servers: services, health, reflection, message limits, TLS, the admin guard, and the
optional admin listener (--admin-port), on either frontend (--frontend): grpc.aio, or the native server
(server/native) delegating each call to the same handlers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol, TypeAlias

import grpc
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection, reflection_pb2

from oip.v1 import routing_admin_pb2_grpc
from server.grpc.admin_guard import (
    ADMIN_SERVICE,
    INFERENCE_ADMIN_METHODS,
    ROUTING_ADMIN_METHODS,
    RefusalLog,
    guard_methods,
    moved_methods,
)
from server.grpc.health import HealthBridge
from server.grpc.registration import SERVICE as INFERENCE_SERVICE
from server.grpc.registration import method_handlers
from server.grpc.servicer import InferenceServicer
from server.security.admin_policy import AdminPolicy
from server.settings import GrpcSettings


def _credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    if settings.tls_certificate is None or settings.tls_private_key is None:
        return None
    pair = (settings.tls_private_key.read_bytes(), settings.tls_certificate.read_bytes())
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def _new_server(settings: GrpcSettings) -> grpc.aio.Server:
    limit = settings.max_message_bytes
    return grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
            # Fewer, larger HTTP/2 frames and no per-connection stream cap for load-test fan-in.
            ("grpc.max_concurrent_streams", 10_000),
            # grpc.aio takes new calls from grpc-core one at a time; the rest wait in core's pending queue, which
            # by default (1,000 soft, 3,000 hard) drops calls at random with CANCELLED under a burst. Soft = hard
            # turns that off up to one deliberate bound; our own limit (CallLimits, max_concurrent_rpcs) then
            # answers the overload RESOURCE_EXHAUSTED. grpc.aio's `maximum_concurrent_rpcs` is not used: it only
            # stops taking calls from core, so they pile up in that same queue and are cancelled.
            ("grpc.server.max_pending_requests", settings.max_pending_rpcs),
            ("grpc.server.max_pending_requests_hard_limit", settings.max_pending_rpcs),
            # Off unless several worker processes share the port on purpose (--workers).
            ("grpc.so_reuseport", 1 if settings.reuse_port else 0),
        ]
    )


def _bind(server: grpc.aio.Server, settings: GrpcSettings, host: str, port: int) -> int:
    address = f"{host}:{port}"
    credentials = _credentials(settings)
    try:
        return (
            server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        )
    except RuntimeError as error:  # grpc raises RuntimeError when the address is taken or invalid
        raise OSError(f"could not bind gRPC to {address}: {error}") from None


_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]
_REFLECTION_SERVICE = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
_LISTED = (
    INFERENCE_SERVICE.full_name,
    ADMIN_SERVICE.full_name,
    _HEALTH_SERVICE.full_name,
    _REFLECTION_SERVICE.full_name,
)
#: What the admin listener serves of the inference service: its admin RPCs, and the index to see what they did.
_ADMIN_LISTENER_INFERENCE_METHODS = INFERENCE_ADMIN_METHODS | {"RepositoryIndex"}


class GrpcEndpoint(Protocol):
    """What the app needs of a bound gRPC server, on either frontend."""

    async def start(self) -> None: ...

    async def stop(self, grace: float | None) -> None: ...


Handlers = Mapping[str, "grpc.RpcMethodHandler[Any, Any]"]
#: Every service's handlers by method name, keyed by the service's full name.
Services: TypeAlias = dict[str, dict[str, "grpc.RpcMethodHandler[Any, Any]"]]


def _service_handlers(inference: Handlers, routing_admin: Handlers, health: HealthBridge) -> Services:
    """Every service's handlers by method name, keyed by the service's full name."""
    return {
        INFERENCE_SERVICE.full_name: dict(inference),
        ADMIN_SERVICE.full_name: dict(routing_admin),
        _HEALTH_SERVICE.full_name: method_handlers(health.servicer, _HEALTH_SERVICE, frozenset()),
        _REFLECTION_SERVICE.full_name: method_handlers(
            reflection.aio.ReflectionServicer(_LISTED), _REFLECTION_SERVICE, frozenset()
        ),
    }


#: Binds a server for `services` at (host, port): (the server, the port it bound). `python_endpoint` is grpc.aio's;
#: server.native.endpoint has the native frontend's.
EndpointFactory: TypeAlias = Callable[[GrpcSettings, str, int, Services], tuple[GrpcEndpoint, int]]


def python_endpoint(settings: GrpcSettings, host: str, port: int, services: Services) -> tuple[GrpcEndpoint, int]:
    """The grpc.aio server (--frontend python)."""
    server = _new_server(settings)
    # Inference first: grpc asks the generic handlers in order for every call.
    server.add_generic_rpc_handlers(
        tuple(grpc.method_handlers_generic_handler(name, methods) for name, methods in services.items())
    )
    return server, _bind(server, settings, host, port)


def build_grpc_server(
    settings: GrpcSettings,
    servicer: InferenceServicer,
    health: HealthBridge,
    admin: routing_admin_pb2_grpc.RoutingAdminServicer,
    admin_policy: AdminPolicy,
    admin_elsewhere: bool = False,
    endpoint: EndpointFactory = python_endpoint,
) -> tuple[GrpcEndpoint, int]:
    """A configured, bound (not yet started) server and the port it bound; `admin_policy` guards the admin RPCs.

    With `admin_elsewhere` (an admin listener of its own, `build_admin_server`) this port refuses them instead.
    `endpoint` makes the server: grpc.aio's, or the native frontend's."""
    inference = method_handlers(servicer)
    routing_admin = method_handlers(admin, ADMIN_SERVICE, frozenset())
    if admin_elsewhere:
        inference = moved_methods(inference, INFERENCE_ADMIN_METHODS)
        routing_admin = moved_methods(routing_admin, ROUTING_ADMIN_METHODS)
    else:
        refusals = RefusalLog()
        inference = guard_methods(inference, INFERENCE_ADMIN_METHODS, admin_policy, refusals)
        routing_admin = guard_methods(routing_admin, ROUTING_ADMIN_METHODS, admin_policy, refusals)
    return endpoint(settings, settings.host, settings.port, _service_handlers(inference, routing_admin, health))


def build_admin_server(
    settings: GrpcSettings,
    host: str,
    port: int,
    servicer: InferenceServicer,
    health: HealthBridge,
    admin: routing_admin_pb2_grpc.RoutingAdminServicer,
    admin_policy: AdminPolicy,
    endpoint: EndpointFactory = python_endpoint,
) -> tuple[GrpcEndpoint, int]:
    """The admin listener (--admin-port): the admin RPCs, RepositoryIndex, health and reflection, guarded by
    `admin_policy`, with the gRPC settings' TLS and limits. Bound, not yet started; also the port it bound."""
    inference = {
        name: handler
        for name, handler in method_handlers(servicer).items()
        if name in _ADMIN_LISTENER_INFERENCE_METHODS
    }
    refusals = RefusalLog()
    inference = guard_methods(inference, INFERENCE_ADMIN_METHODS, admin_policy, refusals)
    routing_admin = guard_methods(
        method_handlers(admin, ADMIN_SERVICE, frozenset()), ROUTING_ADMIN_METHODS, admin_policy, refusals
    )
    return endpoint(settings, host, port, _service_handlers(inference, routing_admin, health))
