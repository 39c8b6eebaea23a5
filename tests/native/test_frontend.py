"""The native frontend (server/native/frontend.py, context.py) serving grpc.aio-style handlers to a real grpc.aio
client: what the client sees must be what a grpc.aio server running the same handlers would answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc
import pytest
from grpc.aio import AioRpcError

from oip.v1 import grpc_service_pb2 as pb
from server.native.frontend import NativeGrpcServer

MIB = 1 << 20
LIMIT = 16 * MIB
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", LIMIT), ("grpc.max_send_message_length", LIMIT)]
#: How long a handler waits for something that never comes; far beyond any test's own wait.
FOREVER = 60.0


@dataclass
class Probe:
    """What the handlers saw, for the tests to check (the server runs on the test's own loop)."""

    seen: dict[str, Any] = field(default_factory=dict)
    started: asyncio.Event = field(default_factory=asyncio.Event)
    cancelled: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    written: int = 0


def explode(raw: bytes) -> bytes:
    raise ValueError("not a request")


def numeral(number: int) -> bytes:
    return str(number).encode()


def handlers(probe: Probe) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The test service's methods, "/test.Echo/<name>"."""

    async def echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    async def inspect(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        probe.seen.update(
            metadata=tuple(context.invocation_metadata() or ()),
            peer=context.peer(),
            remaining=context.time_remaining(),
        )
        return b"seen"

    async def abort(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        await context.abort(grpc.StatusCode.NOT_FOUND, request.decode(), (("x-reason-bin", b"\x00gone"),))

    async def set_status(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        context.set_code(grpc.StatusCode.ALREADY_EXISTS)
        context.set_details(request.decode())
        return b"not for the client"

    async def trailers(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        context.set_trailing_metadata((("x-answer", "42"), ("x-blob-bin", b"\x00\x01\xfe\xff")))
        return b"with trailers"

    async def fail(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        raise RuntimeError("boom")

    async def live(request: pb.ServerLiveRequest, context: grpc.aio.ServicerContext[Any, Any]) -> pb.ServerLiveResponse:
        assert isinstance(request, pb.ServerLiveRequest)
        return pb.ServerLiveResponse(live=True)

    async def hang(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        probe.started.set()
        try:
            await asyncio.sleep(FOREVER)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        return b"too late"

    async def slow(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        probe.started.set()
        await asyncio.sleep(0.3)
        return request

    async def count(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        for i in range(int(request)):
            yield str(i).encode()

    async def write(request: bytes, context: grpc.aio.ServicerContext[bytes, int]) -> None:
        for i in range(int(request)):
            await context.write(i)  # serialized by the handler's response_serializer

    async def count_then_abort(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> AsyncIterator[bytes]:
        for i in range(3):
            yield str(i).encode()
        await context.abort(grpc.StatusCode.OUT_OF_RANGE, "three is all")

    async def flood(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> None:
        probe.started.set()
        chunk = b"x" * MIB
        try:
            for _ in range(200):
                await context.write(chunk)
                probe.written += 1
        finally:  # cancelled, or its write failed (grpc.aio may do either when the client leaves)
            probe.ended.set()

    async def bidi(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        async for request in requests:
            yield request

    async def text(request: bytes, context: grpc.aio.ServicerContext[bytes, str]) -> str:
        return "héllo"  # no serializer: grpc.aio sends a str as UTF-8

    async def write_text(request: bytes, context: grpc.aio.ServicerContext[bytes, str]) -> None:
        await context.write("é")
        await context.write("✓")

    async def total(requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return str(sum([int(request) async for request in requests])).encode()

    async def stall(
        requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext[bytes, bytes]
    ) -> AsyncIterator[bytes]:
        first = await anext(requests)
        probe.started.set()
        try:
            await asyncio.sleep(FOREVER)
        except asyncio.CancelledError:
            probe.cancelled.set()
            raise
        yield first

    unary = grpc.unary_unary_rpc_method_handler
    methods: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
        "Unary": unary(echo),
        "Inspect": unary(inspect),
        "Abort": unary(abort),
        "SetStatus": unary(set_status),
        "Trailers": unary(trailers),
        "Fail": unary(fail),
        "BadRequest": unary(echo, request_deserializer=explode),
        "BadRequests": grpc.stream_unary_rpc_method_handler(total, request_deserializer=explode),
        "Text": unary(text),
        "WriteText": grpc.unary_stream_rpc_method_handler(write_text),
        "Live": unary(
            live,
            request_deserializer=pb.ServerLiveRequest.FromString,
            response_serializer=pb.ServerLiveResponse.SerializeToString,
        ),
        "Hang": unary(hang),
        "Slow": unary(slow),
        "Count": grpc.unary_stream_rpc_method_handler(count),
        "Write": grpc.unary_stream_rpc_method_handler(write, response_serializer=numeral),
        "CountThenAbort": grpc.unary_stream_rpc_method_handler(count_then_abort),
        "Flood": grpc.unary_stream_rpc_method_handler(flood),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
        "Sum": grpc.stream_unary_rpc_method_handler(total),
        "Stall": grpc.stream_stream_rpc_method_handler(stall),
    }
    return {f"/test.Echo/{name}": handler for name, handler in methods.items()}


def path(method: str) -> str:
    """A test method's path; a full path ("/package.Service/Method") as it is."""
    return method if method.startswith("/") else f"/test.Echo/{method}"


@dataclass
class Served:
    server: NativeGrpcServer
    channel: grpc.aio.Channel
    probe: Probe

    def unary(self, method: str) -> grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]:
        return self.channel.unary_unary(path(method))

    def unary_stream(self, method: str) -> grpc.aio.UnaryStreamMultiCallable[bytes, bytes]:
        return self.channel.unary_stream(path(method))

    def stream_unary(self, method: str) -> grpc.aio.StreamUnaryMultiCallable[bytes, bytes]:
        return self.channel.stream_unary(path(method))

    def stream_stream(self, method: str) -> grpc.aio.StreamStreamMultiCallable[bytes, bytes]:
        return self.channel.stream_stream(path(method))


@pytest.fixture
async def served(native: ModuleType) -> AsyncIterator[Served]:
    probe = Probe()
    server = NativeGrpcServer(native, handlers(probe), "127.0.0.1:0", LIMIT, reuse_port=False)
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.port}", options=CHANNEL_OPTIONS)
    try:
        yield Served(server, channel, probe)
    finally:
        await channel.close()
        await server.stop(0.5)


async def failure(call: Any) -> AioRpcError:
    """The error a call ends with (it must end with one)."""
    with pytest.raises(AioRpcError) as raised:
        await call
    return raised.value


async def numbers(count: int) -> AsyncIterator[bytes]:
    for i in range(count):
        yield str(i).encode()


# ------------------------------------------------------------ unary calls and the call's facts


@pytest.mark.parametrize("size", [0, 1, 1000, 5 * MIB])
async def test_unary_echo_round_trip(served: Served, size: int) -> None:
    message = bytes(range(256)) * (size // 256) + b"t" * (size % 256)
    assert await served.unary("Unary")(message, timeout=10) == message


async def test_protobuf_messages_are_deserialized_and_serialized_by_the_handler_s_functions(served: Served) -> None:
    live = served.channel.unary_unary(
        "/test.Echo/Live",
        request_serializer=pb.ServerLiveRequest.SerializeToString,
        response_deserializer=pb.ServerLiveResponse.FromString,
    )
    assert (await live(pb.ServerLiveRequest(), timeout=5)).live is True


async def test_the_handler_sees_metadata_peer_and_deadline_as_grpc_aio_gives_them(served: Served) -> None:
    metadata = (("x-text", "hello"), ("x-token-bin", b"\x00\x01\xfe\xff"))
    assert await served.unary("Inspect")(b"", metadata=metadata, timeout=10) == b"seen"
    seen = served.probe.seen
    assert ("x-text", "hello") in seen["metadata"]
    assert ("x-token-bin", b"\x00\x01\xfe\xff") in seen["metadata"]
    assert all(isinstance(value, bytes if key.endswith("-bin") else str) for key, value in seen["metadata"])
    assert seen["peer"].startswith("ipv4:127.0.0.1:")
    assert 8.0 < seen["remaining"] < 10.5  # gRPC rounds the timeout it sends up, by about 1% (grpc.aio sees it too)

    assert await served.unary("Inspect")(b"") == b"seen"
    assert served.probe.seen["remaining"] is None


async def test_many_concurrent_unary_calls_are_all_answered(served: Served) -> None:
    echo = served.unary("Unary")
    messages = [f"call {i}".encode() for i in range(500)]
    answers = await asyncio.gather(*(echo(message, timeout=20) for message in messages))
    assert answers == messages


# ------------------------------------------------------------ statuses


async def test_abort_reaches_the_client_with_its_code_details_and_trailing_metadata(served: Served) -> None:
    error = await failure(served.unary("Abort")(b"no such thing", timeout=5))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == "no such thing"
    assert ("x-reason-bin", b"\x00gone") in tuple(error.trailing_metadata() or ())


async def test_non_ascii_details_arrive_intact(served: Served) -> None:
    details = "é ✓ nicht gefunden, 見つかりません"
    error = await failure(served.unary("Abort")(details.encode(), timeout=5))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert error.details() == details
    error = await failure(served.unary("SetStatus")(details.encode(), timeout=5))
    assert error.details() == details


async def test_set_code_and_set_details_on_a_normal_return(served: Served) -> None:
    error = await failure(served.unary("SetStatus")(b"already there", timeout=5))
    assert error.code() is grpc.StatusCode.ALREADY_EXISTS
    assert error.details() == "already there"


async def test_trailing_metadata_reaches_the_client(served: Served) -> None:
    call = served.unary("Trailers")(b"", timeout=5)
    assert await call == b"with trailers"
    assert await call.code() is grpc.StatusCode.OK
    trailing = tuple(await call.trailing_metadata() or ())
    assert ("x-answer", "42") in trailing
    assert ("x-blob-bin", b"\x00\x01\xfe\xff") in trailing


async def test_an_uncaught_exception_is_unknown_and_the_server_keeps_serving(served: Served) -> None:
    error = await failure(served.unary("Fail")(b"", timeout=5))
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert error.details() == "Unexpected <class 'RuntimeError'>: boom"  # grpc.aio's words
    assert await served.unary("Unary")(b"still here", timeout=5) == b"still here"


async def test_an_unknown_method_is_unimplemented(served: Served) -> None:
    for method in ("/test.Echo/Nothing", "/no.Such/Service"):
        error = await failure(served.unary(method)(b"", timeout=5))
        assert error.code() is grpc.StatusCode.UNIMPLEMENTED
        assert error.details() == "Method not found!"
    streaming = served.stream_stream("Nothing")(timeout=5)
    assert await streaming.code() is grpc.StatusCode.UNIMPLEMENTED
    assert await streaming.details() == "Method not found!"


async def test_a_streamed_request_that_does_not_deserialize_is_unknown_as_on_grpc_aio(served: Served) -> None:
    error = await failure(served.stream_unary("BadRequests")(numbers(2), timeout=5))
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert error.details() == "Unexpected <class 'ValueError'>: not a request"
    assert await served.unary("Unary")(b"still here", timeout=5) == b"still here"


async def test_a_request_that_does_not_deserialize_is_answered_as_on_grpc_aio(served: Served) -> None:
    error = await failure(served.unary("BadRequest")(b"junk", timeout=5))
    assert error.code() is grpc.StatusCode.UNKNOWN
    assert error.details() == "Unexpected <class 'ValueError'>: not a request"


async def test_str_responses_without_a_serializer_go_out_as_utf8(served: Served) -> None:
    assert await served.unary("Text")(b"", timeout=5) == "héllo".encode()
    call = served.unary_stream("WriteText")(b"", timeout=5)
    assert [message async for message in call] == ["é".encode(), "✓".encode()]


# ------------------------------------------------------------ streaming


async def test_an_async_generator_streams_its_messages_in_order(served: Served) -> None:
    call = served.unary_stream("Count")(b"300", timeout=10)
    assert [message async for message in call] == [str(i).encode() for i in range(300)]
    assert await call.code() is grpc.StatusCode.OK
    assert [message async for message in served.unary_stream("Count")(b"0", timeout=5)] == []


async def test_context_write_streams_serialized_messages_in_order(served: Served) -> None:
    call = served.unary_stream("Write")(b"100", timeout=10)
    assert [message async for message in call] == [str(i).encode() for i in range(100)]
    assert await call.code() is grpc.StatusCode.OK


async def test_an_abort_after_streamed_messages_comes_after_them(served: Served) -> None:
    call = served.unary_stream("CountThenAbort")(b"", timeout=10)
    received = []
    with pytest.raises(AioRpcError) as raised:
        async for message in call:
            received.append(message)
    assert received == [b"0", b"1", b"2"]
    assert raised.value.code() is grpc.StatusCode.OUT_OF_RANGE
    assert raised.value.details() == "three is all"


async def test_bidi_streaming_echoes_many_messages_in_order(served: Served) -> None:
    call = served.stream_stream("Bidi")(numbers(1000), timeout=20)
    assert [message async for message in call] == [str(i).encode() for i in range(1000)]
    assert await call.code() is grpc.StatusCode.OK


async def test_bidi_streaming_answers_each_message_before_the_next_is_sent(served: Served) -> None:
    call = served.stream_stream("Bidi")(timeout=10)
    for i in range(50):
        await call.write(f"ping {i}".encode())
        assert await call.read() == f"ping {i}".encode()
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() is grpc.StatusCode.OK


async def test_stream_unary_sums_the_requests(served: Served) -> None:
    assert await served.stream_unary("Sum")(numbers(101), timeout=10) == b"5050"
    assert await served.stream_unary("Sum")(numbers(0), timeout=5) == b"0"


# ------------------------------------------------------------ cancellation


async def test_a_client_cancelling_cancels_the_handler(served: Served) -> None:
    call = served.unary("Hang")(b"")
    await asyncio.wait_for(served.probe.started.wait(), 5)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.wait_for(served.probe.cancelled.wait(), 5)
    assert await served.unary("Unary")(b"after", timeout=5) == b"after"


async def test_a_passed_deadline_cancels_the_handler(served: Served) -> None:
    error = await failure(served.unary("Hang")(b"", timeout=0.3))
    assert error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
    await asyncio.wait_for(served.probe.cancelled.wait(), 5)
    assert await served.unary("Unary")(b"after", timeout=5) == b"after"


# ------------------------------------------------------------ flow control


async def test_a_handler_that_stops_reading_holds_the_client_back(served: Served) -> None:
    call = served.stream_stream("Stall")(timeout=20)
    await call.write(b"first")
    await asyncio.wait_for(served.probe.started.wait(), 5)
    chunk = b"x" * MIB
    written = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(2):
            for _ in range(200):
                await call.write(chunk)
                written += 1
    assert written < 100, f"{written} MiB taken by a handler that reads nothing"
    call.cancel()
    await asyncio.wait_for(served.probe.cancelled.wait(), 5)
    assert await served.unary("Unary")(b"after", timeout=5) == b"after"


async def test_a_client_that_stops_reading_holds_the_handler_back(served: Served) -> None:
    call = served.unary_stream("Flood")(b"", timeout=20)
    await asyncio.wait_for(served.probe.started.wait(), 5)
    await asyncio.sleep(2)
    assert served.probe.written < 100, f"{served.probe.written} MiB written to a client that reads nothing"
    call.cancel()
    await asyncio.wait_for(served.probe.ended.wait(), 5)
    assert served.probe.written < 100
    assert await served.unary("Unary")(b"after", timeout=5) == b"after"


# ------------------------------------------------------------ stopping


async def test_stop_lets_a_call_in_progress_finish_within_the_grace(served: Served) -> None:
    call = served.unary("Slow")(b"last one", timeout=10)
    await asyncio.wait_for(served.probe.started.wait(), 5)
    began = time.monotonic()
    await served.server.stop(1.0)
    assert time.monotonic() - began < 0.95  # not the whole grace when the calls are done sooner
    assert await call == b"last one"
    assert await call.code() is grpc.StatusCode.OK

    await served.server.stop(1.0)  # idempotent
    error = await failure(served.unary("Unary")(b"too late", timeout=5))
    assert error.code() is grpc.StatusCode.UNAVAILABLE
    async with grpc.aio.insecure_channel(f"127.0.0.1:{served.server.port}") as fresh:
        echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = fresh.unary_unary(path("Unary"))
        error = await failure(echo(b"too late", timeout=5))
    assert error.code() is grpc.StatusCode.UNAVAILABLE


async def test_stop_cancels_a_call_that_outlasts_the_grace(served: Served) -> None:
    call = served.unary("Hang")(b"", timeout=10)
    await asyncio.wait_for(served.probe.started.wait(), 5)
    began = time.monotonic()
    await served.server.stop(0.3)
    assert time.monotonic() - began < 2.0
    await asyncio.wait_for(served.probe.cancelled.wait(), 5)
    error = await failure(call)
    assert error.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
