"""Enforces the admin access policy on the admin RPCs, and only on them.

The check wraps each admin handler once, when the server is built, so inference, metadata and health
calls never pass through it (an interceptor would run on every call of the hot path).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any, TypeAlias

import grpc

from oip.v1 import routing_admin_pb2
from server.security.admin_policy import AdminPolicy, Refusal, RefusalKind
from server.telemetry.ratelimit import RateLimitedLog

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]
Behaviour: TypeAlias = Callable[..., Awaitable[Any]]

ADMIN_SERVICE = routing_admin_pb2.DESCRIPTOR.services_by_name["RoutingAdmin"]
#: The inference service's RPCs that change state; the rest of it (inference, metadata,
#: RepositoryIndex, statistics) stays open.
INFERENCE_ADMIN_METHODS = frozenset({"RepositoryModelLoad", "RepositoryModelUnload"})
#: Every RoutingAdmin RPC: they change routing or reveal control data (verdicts, drift).
ROUTING_ADMIN_METHODS = frozenset(method.name for method in ADMIN_SERVICE.methods)

_CODES = {
    RefusalKind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    RefusalKind.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
}
#: Certificate properties grpc's TLS layer reports that can name a client (the full subject, its CN, each SAN).
_IDENTITY_PROPERTIES = ("x509_subject", "x509_common_name", "x509_subject_alternative_name")
#: At most one refusal line per this many seconds (with a count of those left out), so that a client
#: hammering the admin RPCs cannot flood the log.
REFUSAL_LOG_INTERVAL_S = 10.0


class RefusalLog:
    """Rate-limited WARNING lines for refused admin calls: method, reason and peer address, never credentials."""

    def __init__(self, interval_s: float = REFUSAL_LOG_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self._line = RateLimitedLog(log, logging.WARNING, interval_s, clock)

    def record(self, method: str, refusal: Refusal, peer: str) -> None:
        # Fields, not the message: both log formats escape field values (the peer string is the transport's).
        self._line.log("admin call refused", event="admin_refused", method=method, reason=refusal.reason, peer=peer)


def _authorization(context: Context) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            return value if isinstance(value, str) else None
    return None


def _identities(context: Context) -> Iterator[str]:
    properties = context.auth_context()
    for name in _IDENTITY_PROPERTIES:
        for value in properties.get(name, ()):
            yield value.decode("utf-8", "replace")


def _guarded(behaviour: Behaviour, method: str, policy: AdminPolicy, refusals: RefusalLog) -> Behaviour:
    async def call(request: Any, context: Context) -> Any:
        refusal = policy.decide(method, _authorization(context), _identities(context))
        if refusal is not None:
            refusals.record(method, refusal, context.peer())
            await context.abort(_CODES[refusal.kind], refusal.message)
        return await behaviour(request, context)

    return call


def guard_methods(
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
    methods: Iterable[str],
    policy: AdminPolicy,
    refusals: RefusalLog,
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """`handlers` with each of `methods` (unary RPCs) asking `policy` before it runs."""
    guarded = dict(handlers)
    for method in methods:
        handler = handlers[method]
        behaviour = handler.unary_unary
        if behaviour is None:
            raise TypeError(f"admin RPC {method} is not unary; the guard only wraps unary handlers")
        guarded[method] = grpc.unary_unary_rpc_method_handler(
            _guarded(behaviour, method, policy, refusals),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return guarded


def _moved(method: str) -> Behaviour:
    async def call(request: Any, context: Context) -> Any:
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"admin RPC {method} is served on the admin listener (--admin-port), not on this port",
        )

    return call


def moved_methods(
    handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]], methods: Iterable[str]
) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """`handlers` with each of `methods` (unary RPCs) refused: they are served on the admin listener."""
    moved = dict(handlers)
    for method in methods:
        handler = handlers[method]
        moved[method] = grpc.unary_unary_rpc_method_handler(
            _moved(method),
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
    return moved
