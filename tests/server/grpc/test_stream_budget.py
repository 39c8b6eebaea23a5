"""A stream's budget: a client that sends without reading is no longer read once the budget is full."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.streaming import StreamBudget, serve_stream
from server.grpc.tensors import ParsedRequest

MESSAGE = 1024 * 1024


async def test_an_unread_stream_stops_being_read_at_its_byte_budget() -> None:
    read = 0

    async def requests() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(200):
            read += 1
            yield b"\x00" * MESSAGE

    async def infer(request: ParsedRequest) -> bytes:
        return b"\x01" * MESSAGE  # a 1 MiB response for every request

    budget = StreamBudget(max_requests=1024, max_bytes=8 * MESSAGE)
    responses = serve_stream(requests(), lambda raw: ParsedRequest(pb.ModelInferRequest()), infer, budget)
    first = await anext(responses)  # the client reads one response, then stops reading
    await asyncio.sleep(0.2)  # plenty of time for an unbounded reader to take all 200
    assert len(first) > MESSAGE
    # Admitted while the budget had room: 8 requests of 1 MiB (plus the one the reader waits with); their
    # responses are added as they are answered, so at most twice the budget is held, never 200 MiB.
    assert read <= 9
    assert budget.held_bytes <= 2 * 8 * MESSAGE + 1024  # (plus a few bytes of response framing)
    await responses.aclose()


async def test_the_request_count_is_bounded_too_and_reading_resumes_as_responses_are_taken() -> None:
    read = 0

    async def requests() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(50):
            read += 1
            yield b"x"

    async def infer(request: ParsedRequest) -> bytes:
        return b"y"

    responses = serve_stream(
        requests(), lambda raw: ParsedRequest(pb.ModelInferRequest()), infer, StreamBudget(4, 1 << 20)
    )
    got = [await anext(responses)]
    await asyncio.sleep(0.05)
    assert read <= 5
    got += [item async for item in responses]  # reading everything lets every request through
    assert len(got) == 50 and read == 50


async def test_one_message_larger_than_the_budget_still_passes_alone() -> None:
    async def requests() -> AsyncIterator[bytes]:
        yield b"\x00" * (4 * MESSAGE)

    async def infer(request: ParsedRequest) -> bytes:
        return b"ok"

    responses = serve_stream(
        requests(), lambda raw: ParsedRequest(pb.ModelInferRequest()), infer, StreamBudget(8, MESSAGE)
    )
    assert [item async for item in responses] != []


async def test_closing_the_stream_cancels_its_requests_quietly(caplog: pytest.LogCaptureFixture) -> None:
    started = asyncio.Event()

    async def requests() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b"x"

    async def infer(request: ParsedRequest) -> bytes:
        started.set()
        await asyncio.sleep(60)
        return b"never"

    responses = serve_stream(requests(), lambda raw: ParsedRequest(pb.ModelInferRequest()), infer)
    waiting = asyncio.ensure_future(anext(responses))
    await started.wait()
    waiting.cancel()  # as grpc.aio does when the client cancels the call
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await responses.aclose()
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
