"""The native gRPC server's lifecycle (milestone 2 groundwork, docs/native-data-plane.md), with real clients."""

from __future__ import annotations

import signal
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc


def call_live(port: int) -> bool:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return pb_grpc.GRPCInferenceServiceStub(channel).ServerLive(pb.ServerLiveRequest(), timeout=5).live


def test_server_live_is_answered_and_other_rpcs_are_unimplemented(native: ModuleType) -> None:
    server = native.NativeServer("127.0.0.1:0")
    try:
        assert server.running and server.port > 0
        assert call_live(server.port) is True
        channel = grpc.insecure_channel(f"127.0.0.1:{server.port}")
        with channel, pytest.raises(grpc.RpcError) as refused:
            pb_grpc.GRPCInferenceServiceStub(channel).ServerReady(pb.ServerReadyRequest(), timeout=5)
        assert refused.value.code() is grpc.StatusCode.UNIMPLEMENTED  # answered at once, not left to time out
    finally:
        server.stop(1.0)


def test_a_port_in_use_is_an_error_not_shared(native: ModuleType) -> None:
    # gRPC C++ turns SO_REUSEPORT on by default: a second server would silently share the port.
    first = native.NativeServer("127.0.0.1:0")
    try:
        with pytest.raises(RuntimeError, match="could not bind gRPC"):
            native.NativeServer(f"127.0.0.1:{first.port}")
        assert call_live(first.port)
    finally:
        first.stop()


def test_stop_is_idempotent_and_ends_serving(native: ModuleType) -> None:
    server = native.NativeServer("127.0.0.1:0")
    port = server.port
    assert call_live(port)
    server.stop(1.0)
    server.stop(1.0)
    assert not server.running
    with pytest.raises(grpc.RpcError) as gone:
        call_live(port)
    assert gone.value.code() is grpc.StatusCode.UNAVAILABLE


def test_many_servers_start_serve_and_stop(native: ModuleType) -> None:
    for _ in range(20):
        server = native.NativeServer("127.0.0.1:0")
        assert call_live(server.port)
        server.stop()


def blocked_signals(task: Path) -> int | None:
    """The thread's blocked-signal mask, or None if it has already exited."""
    try:
        status = (task / "status").read_text()
    except FileNotFoundError:
        return None
    for line in status.splitlines():
        if line.startswith("SigBlk:"):
            return int(line.split()[1], 16)
    raise AssertionError(f"no SigBlk for {task}")


def test_its_threads_leave_sigterm_and_sigint_to_python(native: ModuleType) -> None:
    # Python's handlers run the drain sequence; the native threads must never take these signals.
    tasks = Path("/proc/self/task")
    before = {task.name for task in tasks.iterdir()}
    server = native.NativeServer("127.0.0.1:0")
    try:
        # Taken before any client call: grpcio's own threads are not the server's.
        started = [task for task in tasks.iterdir() if task.name not in before]
        assert started, "the server started no thread"
        assert call_live(server.port)
        wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
        masks = {task.name: blocked_signals(task) for task in started}
        unblocked = [name for name, mask in masks.items() if mask is not None and mask & wanted != wanted]
        assert not unblocked, f"threads that could take SIGTERM/SIGINT: {unblocked}"
    finally:
        server.stop()
