"""The native gRPC server's own protocol (native/src/server.cpp), driven by hand: bind, the events it queues for
Python (started, message, half-closed, done, written), read_next/write/finish, and stop; with real clients."""

from __future__ import annotations

import select
import signal
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

STARTED, MESSAGE, HALF_CLOSED, DONE, WRITTEN = 0, 1, 2, 3, 4
UNDRAWN = (False, False, False, False)  # a message the native path drew nothing for
OK, NOT_FOUND = 0, 5


class Events:
    """Takes the server's events as Python's loop would: wait for the eventfd, then take them all."""

    def __init__(self, server: Any) -> None:
        self._server = server
        self._waiting: list[tuple[Any, ...]] = []

    def next(self, timeout_s: float = 5.0) -> tuple[Any, ...]:
        deadline = time.monotonic() + timeout_s
        while not self._waiting:
            left = deadline - time.monotonic()
            assert left > 0, "no event arrived"
            select.select([self._server.event_fd], [], [], left)
            self._waiting.extend(self._server.take_events())
        return self._waiting.pop(0)

    def until(self, kind: int, timeout_s: float = 5.0) -> tuple[Any, ...]:
        while True:
            event = self.next(timeout_s)
            if event[0] == kind:
                return event


def unary(port: int, method: str, request: bytes, **kwargs: Any) -> Future[Any]:
    """Calls `method` from another thread; the future holds (response, call) or the RpcError."""

    def call() -> Any:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return channel.unary_unary(method).with_call(request, timeout=kwargs.pop("timeout", 10), **kwargs)

    return ThreadPoolExecutor(1).submit(call)


@pytest.fixture
def server(native: ModuleType) -> Iterator[Any]:
    running = native.NativeServer("127.0.0.1:0")
    try:
        yield running
    finally:
        running.stop(1.0)


def test_a_unary_call_is_delegated_as_events_and_answered_with_finish(server: Any) -> None:
    events = Events(server)
    answer = unary(
        server.port, "/test.Echo/Say", b"hello", metadata=(("x-tenant", "acme"), ("x-token-bin", b"\x00\xff"))
    )
    _, call, method, metadata, remaining, peer, auth, drawn = events.until(STARTED)
    assert method == "/test.Echo/Say"
    # (decided, access log, trace, shadow copy): only a ModelInfer that reached the native path's draws is decided.
    assert drawn == (False, False, False, False)
    assert ("x-tenant", b"acme") in metadata and ("x-token-bin", b"\x00\xff") in metadata
    assert 8.0 < remaining <= 10.5  # gRPC rounds the timeout it sends up (10.099 s for 10 s)
    assert peer.startswith("ipv4:127.0.0.1:")
    assert ("transport_security_type", b"insecure") in auth
    assert events.until(MESSAGE) == (MESSAGE, call, b"hello", UNDRAWN)
    assert server.finish(call, OK, b"", b"HELLO", [("x-served-by", b"native")])
    response, outcome = answer.result(timeout=10)
    assert response == b"HELLO"
    assert ("x-served-by", "native") in outcome.trailing_metadata()
    assert events.until(DONE) == (DONE, call, False)
    assert not server.finish(call, OK, b"", None, []), "a call is finished once"


def test_a_status_with_details_reaches_the_client(server: Any) -> None:
    events = Events(server)
    answer = unary(server.port, "/test.Echo/Say", b"")
    call = events.until(STARTED)[1]
    assert events.until(MESSAGE) == (MESSAGE, call, b"", UNDRAWN)
    server.finish(call, NOT_FOUND, "model 'é' not found ✓".encode(), None, [])
    with pytest.raises(grpc.RpcError) as refused:
        answer.result(timeout=10)
    assert refused.value.code() is grpc.StatusCode.NOT_FOUND
    assert refused.value.details() == "model 'é' not found ✓"


def test_a_call_without_deadline_says_so_and_a_cancelled_one_ends_done_cancelled(server: Any) -> None:
    events = Events(server)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        pending = channel.unary_unary("/test.Echo/Wait").future(b"x")
        started = events.until(STARTED)
        assert started[4] is None
        pending.cancel()
        assert events.until(DONE) == (DONE, started[1], True)
    assert server.calls_in_progress() == 1  # Python has not finished it: C++ keeps it until it does
    server.finish(started[1], OK, b"", None, [])
    deadline = time.monotonic() + 5
    while server.calls_in_progress() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert server.calls_in_progress() == 0


def test_a_stream_is_read_only_as_python_asks(server: Any) -> None:
    events = Events(server)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        sent = threading.Event()

        def requests() -> Iterator[bytes]:
            for index in range(3):
                yield f"request {index}".encode()
            sent.set()

        replies = channel.stream_stream("/test.Echo/Chat")(requests(), timeout=10)
        call = events.until(STARTED)[1]
        assert events.until(MESSAGE) == (MESSAGE, call, b"request 0", UNDRAWN)
        assert sent.wait(5)
        time.sleep(0.2)
        assert server.take_events() == [], "the next message is read only on read_next"
        for index in (1, 2):
            assert server.read_next(call)
            assert events.until(MESSAGE) == (MESSAGE, call, f"request {index}".encode(), UNDRAWN)
        assert server.read_next(call)
        assert events.until(HALF_CLOSED) == (HALF_CLOSED, call)
        assert server.write(call, b"reply 0")
        assert server.write(call, b"reply 1")
        assert events.until(WRITTEN) == (WRITTEN, call)
        assert server.finish(call, OK, b"", b"reply 2", [])
        assert [reply for reply in replies] == [b"reply 0", b"reply 1", b"reply 2"]
        assert not server.write(call, b"late"), "nothing is written after the finish"


def test_a_port_in_use_is_an_error_not_shared(native: ModuleType, server: Any) -> None:
    # gRPC C++ turns SO_REUSEPORT on by default: a second server would silently share the port.
    with pytest.raises(RuntimeError, match="could not bind gRPC"):
        native.NativeServer(f"127.0.0.1:{server.port}")


def test_stop_cancels_unanswered_calls_after_the_grace_and_is_idempotent(native: ModuleType) -> None:
    server = native.NativeServer("127.0.0.1:0")
    events = Events(server)
    answer = unary(server.port, "/test.Echo/Never", b"x")
    events.until(STARTED)
    began = time.monotonic()
    server.stop(0.5)
    assert 0.3 < time.monotonic() - began < 5
    server.stop(1.0)
    assert not server.running and server.calls_in_progress() == 0
    with pytest.raises(grpc.RpcError) as ended:
        answer.result(timeout=10)
    assert ended.value.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(grpc.RpcError) as gone:
        unary(server.port, "/test.Echo/Say", b"x", timeout=2).result(timeout=10)
    assert gone.value.code() is grpc.StatusCode.UNAVAILABLE


def answer_every_call(server: Any, stop: threading.Event, reply: Callable[[bytes], bytes]) -> threading.Thread:
    """A thread answering each unary call with reply(request), until `stop`."""

    def serve() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([server.event_fd], [], [], 0.05)
            if ready:
                for event in server.take_events():
                    if event[0] == MESSAGE:
                        server.finish(event[1], OK, b"", reply(event[2]), [])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return thread


def test_many_servers_start_serve_and_stop(native: ModuleType) -> None:
    for index in range(10):
        server = native.NativeServer("127.0.0.1:0")
        stop = threading.Event()
        thread = answer_every_call(server, stop, lambda request: request[::-1])
        try:
            response, _ = unary(server.port, "/test.Echo/Reverse", f"abc{index}".encode()).result(timeout=10)
            assert response == f"{index}cba".encode()
        finally:
            stop.set()
            thread.join()
            server.stop(1.0)


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
        wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGINT - 1))
        masks = {task.name: blocked_signals(task) for task in started}
        unblocked = [name for name, mask in masks.items() if mask is not None and mask & wanted != wanted]
        assert not unblocked, f"threads that could take SIGTERM/SIGINT: {unblocked}"
    finally:
        server.stop()


def test_one_pair_of_limits_counts_both_paths(native: ModuleType) -> None:
    # CallLimits on the native frontend count in these same counters (server.grpc.overload.CallLimits.share).
    server = native.NativeServer("127.0.0.1:0", max_calls=2, max_bytes=100)
    try:
        assert server.admit_call(10) == (0, 0, 0)
        assert server.admit_call(60) == (0, 1, 10)
        assert server.admit_call(1)[0] == 1, "a third call passes max_calls"
        server.release_call(60)
        status, _, held = server.admit_call(91)
        assert (status, held) == (2, 10), "10 + 91 bytes pass max_bytes"
        assert server.admit_bytes(90) == (0, 10)
        assert server.admit_bytes(1) == (2, 100)
        server.release_bytes(90)
        server.release_call(10)
        assert server.admit_call(100) == (0, 0, 0)
    finally:
        server.stop(1.0)
