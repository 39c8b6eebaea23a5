"""Draining: new calls refused once it begins, admitted ones waited for, open streams wound down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from oip.v1 import grpc_service_pb2 as pb
from server.errors import ShuttingDownError, status_name
from server.grpc.draining import QUIET_S, Drain
from server.grpc.streaming import serve_stream
from server.grpc.tensors import ParsedRequest, parse_infer_request


async def test_draining_refuses_new_calls_and_waits_for_admitted_ones() -> None:
    drain = Drain()
    drain.admit()
    drain.begin()
    with pytest.raises(ShuttingDownError) as refused:
        drain.admit()
    assert status_name(refused.value) == "UNAVAILABLE"
    assert not await drain.wait_idle(0.05)
    asyncio.get_running_loop().call_later(0.05, drain.release)
    assert await drain.wait_idle(1)


async def test_a_draining_stream_answers_its_in_flight_requests_then_ends() -> None:
    stop = asyncio.Event()
    release = asyncio.Event()
    sent = asyncio.Event()

    async def requests() -> AsyncIterator[bytes]:
        yield pb.ModelInferRequest(id="in-flight").SerializeToString()
        sent.set()
        await asyncio.Event().wait()  # an open stream the client never closes

    async def infer(request: ParsedRequest) -> bytes:
        await release.wait()
        return pb.ModelInferResponse(id=request.message.id).SerializeToString()

    responses = serve_stream(requests(), parse_infer_request, infer, stop=stop)
    first = asyncio.ensure_future(anext(responses))
    await sent.wait()
    stop.set()
    await asyncio.sleep(0.01)
    assert not first.done()  # the in-flight request is still served
    release.set()
    response = pb.ModelStreamInferResponse.FromString(await first)
    assert response.infer_response.id == "in-flight" and not response.error_message
    with pytest.raises(ShuttingDownError):
        await asyncio.wait_for(anext(responses), 1)  # then the stream ends, without waiting for the client


async def test_requests_read_after_draining_began_are_refused_in_stream() -> None:
    stop = asyncio.Event()
    release = asyncio.Event()
    served: list[str] = []

    async def requests() -> AsyncIterator[bytes]:
        yield pb.ModelInferRequest(id="in-flight").SerializeToString()
        await stop.wait()
        yield pb.ModelInferRequest(id="late").SerializeToString()
        await asyncio.Event().wait()

    async def infer(request: ParsedRequest) -> bytes:
        served.append(request.message.id)
        await release.wait()
        return pb.ModelInferResponse(id=request.message.id).SerializeToString()

    async def read() -> list[pb.ModelStreamInferResponse]:
        answers = []
        with pytest.raises(ShuttingDownError):
            async for raw in serve_stream(requests(), parse_infer_request, infer, stop=stop):
                answers.append(pb.ModelStreamInferResponse.FromString(raw))
        return answers

    reading = asyncio.ensure_future(read())
    await asyncio.sleep(0.01)
    stop.set()
    await asyncio.sleep(0.01)  # the late request is read and refused meanwhile
    release.set()
    answers = await asyncio.wait_for(reading, 1)
    assert served == ["in-flight"]
    assert [(a.infer_response.id, a.error_message.split(":")[0]) for a in answers] == [
        ("late", "UNAVAILABLE"),
        ("in-flight", ""),
    ]


async def test_grpc_stops_only_once_clients_have_stopped_sending() -> None:
    idle = Drain()
    idle.begin()
    loop = asyncio.get_running_loop()
    started = loop.time()
    await idle.wait_quiet(5)  # no traffic: no wait
    assert loop.time() - started < QUIET_S / 2

    drain = Drain()
    drain.begin()
    with pytest.raises(ShuttingDownError):
        drain.admit()
    started = loop.time()
    loop.call_later(0.1, drain.refused)  # still sending: the quiet time starts again
    await drain.wait_quiet(5)
    assert 0.1 + QUIET_S * 0.9 <= loop.time() - started < 5
    drain.refused()
    started = loop.time()
    await drain.wait_quiet(0.05)  # bounded by its timeout
    assert loop.time() - started < QUIET_S


async def test_a_busy_loop_restarts_the_quiet_time() -> None:
    drain = Drain()
    drain.admit()
    drain.begin()
    drain.release()
    loop = asyncio.get_running_loop()
    started = loop.time()
    loop.call_later(0.1, time.sleep, 0.2)  # the loop is stalled: calls may be waiting in grpc-core
    await drain.wait_quiet(5)
    assert loop.time() - started >= 0.3 + QUIET_S * 0.9
