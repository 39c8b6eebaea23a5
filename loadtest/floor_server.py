"""`python -m loadtest.floor_server`: the "Python gRPC floor", a grpc.aio server doing the least possible work.

ModelInfer ignores the request and returns canned response bytes (what the real server answers to the
load-test request), so its throughput is the best any Python gRPC server can reach on this machine.
On start it prints `{"grpc_port": N}` on one stdout line; it stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from types import ModuleType

import grpc

from oip.v1 import grpc_service_pb2 as pb

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # same fallback as the real server
    uvloop = None

SERVICE = "inference.GRPCInferenceService"
#: Same as the real server's default `max_message_bytes`.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024

Handler = Callable[[bytes, grpc.aio.ServicerContext[bytes, bytes]], Awaitable[bytes]]


def _constant(response: bytes) -> Handler:
    # A coroutine: grpc.aio would run a plain function on a thread pool, which costs more.
    async def handler(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return response

    return handler


def _generic_handler(infer_response: bytes) -> grpc.GenericRpcHandler:
    """Raw-bytes handlers (no (de)serializers): no protobuf parsing on the request path."""
    canned = {
        "ModelInfer": infer_response,
        "ServerLive": pb.ServerLiveResponse(live=True).SerializeToString(),
        "ServerReady": pb.ServerReadyResponse(ready=True).SerializeToString(),
    }
    handlers: dict[str, grpc.RpcMethodHandler[bytes, bytes]] = {
        method: grpc.unary_unary_rpc_method_handler(
            _constant(response), request_deserializer=None, response_serializer=None
        )
        for method, response in canned.items()
    }
    return grpc.method_handlers_generic_handler(SERVICE, handlers)


def build_server(host: str, port: int, infer_response: bytes) -> tuple[grpc.aio.Server, int]:
    """A bound, not yet started server and its port, with the real server's channel options."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_concurrent_streams", 10_000),
            ("grpc.so_reuseport", 0),
        ]
    )
    server.add_generic_rpc_handlers((_generic_handler(infer_response),))
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:  # grpc raises RuntimeError when the address is taken
        raise OSError(f"could not bind gRPC to {host}:{port}: {error}") from None
    return server, bound


async def serve(host: str, port: int, infer_response: bytes) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    server, bound = build_server(host, port, infer_response)
    await server.start()
    try:
        # The parent reads this line to learn the port; flush because stdout is a pipe.
        print(json.dumps({"grpc_port": bound}), flush=True)
        await stop.wait()
    finally:
        await server.stop(grace=1.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.floor_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--response-file", type=Path, required=True, help="serialized ModelInferResponse to return")
    parser.add_argument("--no-uvloop", action="store_true", help="use the standard asyncio event loop")
    args = parser.parse_args(argv)
    try:
        response = args.response_file.read_bytes()
    except OSError as error:
        print(f"cannot read --response-file: {error}", file=sys.stderr)
        return 2
    coroutine = serve(args.host, args.port, response)
    try:
        if uvloop is not None and not args.no_uvloop:
            uvloop.run(coroutine)
        else:
            asyncio.run(coroutine)
    except OSError as error:
        print(f"floor server failed to start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
