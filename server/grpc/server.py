"""Builds the grpc.aio server: services, health, reflection, message limits, TLS, the admin guard."""

from __future__ import annotations

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
)
from server.grpc.health import HealthBridge
from server.grpc.registration import SERVICE as INFERENCE_SERVICE
from server.grpc.registration import generic_handler, method_handlers
from server.grpc.servicer import InferenceServicer
from server.security.admin_policy import AdminPolicy
from server.settings import GrpcSettings


def _credentials(settings: GrpcSettings) -> grpc.ServerCredentials | None:
    if settings.tls_certificate is None or settings.tls_private_key is None:
        return None
    pair = (settings.tls_private_key.read_bytes(), settings.tls_certificate.read_bytes())
    client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
    return grpc.ssl_server_credentials([pair], root_certificates=client_ca, require_client_auth=client_ca is not None)


def build_grpc_server(
    settings: GrpcSettings,
    servicer: InferenceServicer,
    health: HealthBridge,
    admin: routing_admin_pb2_grpc.RoutingAdminServicer,
    admin_policy: AdminPolicy,
) -> tuple[grpc.aio.Server, int]:
    """A configured, bound (not yet started) server and the port it bound; `admin_policy` guards the admin RPCs."""
    limit = settings.max_message_bytes
    server = grpc.aio.server(
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
    health_service = health_pb2.DESCRIPTOR.services_by_name["Health"]
    reflection_service = reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
    listed = (
        INFERENCE_SERVICE.full_name,
        ADMIN_SERVICE.full_name,
        health_service.full_name,
        reflection_service.full_name,
    )
    refusals = RefusalLog()
    inference = guard_methods(method_handlers(servicer), INFERENCE_ADMIN_METHODS, admin_policy, refusals)
    routing_admin = guard_methods(
        method_handlers(admin, ADMIN_SERVICE, frozenset()), ROUTING_ADMIN_METHODS, admin_policy, refusals
    )
    # Inference first: grpc asks the generic handlers in order for every call.
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(INFERENCE_SERVICE.full_name, inference),
            grpc.method_handlers_generic_handler(ADMIN_SERVICE.full_name, routing_admin),
            generic_handler(health.servicer, health_service, frozenset()),
            generic_handler(reflection.aio.ReflectionServicer(listed), reflection_service, frozenset()),
        )
    )
    address = f"{settings.host}:{settings.port}"
    credentials = _credentials(settings)
    try:
        port = (
            server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        )
    except RuntimeError as error:  # grpc raises RuntimeError when the address is taken or invalid
        raise OSError(f"could not bind gRPC to {address}: {error}") from None
    return server, port
