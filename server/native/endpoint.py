"""The native frontend's server for server.grpc.server's builders (an EndpointFactory): the same services, served
by gRPC C++ (server/native/frontend.py), the main port with the native ModelInfer path."""

from __future__ import annotations

from server.grpc.server import GrpcEndpoint, Services
from server.native.extension import load_extension
from server.native.frontend import NativeGrpcServer
from server.native.inference_path import NativeInferencePath
from server.settings import GrpcSettings


def native_endpoint(
    settings: GrpcSettings,
    host: str,
    port: int,
    services: Services,
    inference_path: NativeInferencePath | None = None,
) -> tuple[GrpcEndpoint, int]:
    """A bound NativeGrpcServer for `services`; `inference_path` answers plain ModelInfer calls in C++."""
    handlers = {
        f"/{service}/{method}": handler for service, methods in services.items() for method, handler in methods.items()
    }
    tls = None
    if settings.tls_certificate is not None and settings.tls_private_key is not None:
        client_ca = settings.tls_client_ca.read_bytes() if settings.tls_client_ca else None
        tls = (settings.tls_private_key.read_bytes(), settings.tls_certificate.read_bytes(), client_ca)
    server = NativeGrpcServer(
        load_extension(),
        handlers,
        f"{host}:{port}",
        settings.max_message_bytes,
        settings.reuse_port,
        tls,
        inference_path,
        (settings.max_concurrent_rpcs, settings.max_inflight_bytes),
    )
    return server, server.port
