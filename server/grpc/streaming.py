"""ModelStreamInfer: many requests on one bidirectional stream, served concurrently.

Responses are sent as they complete, so one slow request does not hold back
the others (clients match them by `id`). A failed request becomes an
`error_message` on the stream; the stream itself stays open. That includes a
message that is not a valid ModelInferRequest: it arrives as bytes and is parsed
here, per request, so one bad message fails only itself.

When the server drains for shutdown (`stop` is set), a stream takes no new
requests (any still read get an UNAVAILABLE error_message), answers those in
flight, then ends with ShuttingDownError (status UNAVAILABLE), so an idle open
stream does not hold shutdown for the grace period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from oip.v1 import grpc_service_pb2 as pb
from server.errors import ResourceExhaustedError, ServerError, ShuttingDownError
from server.grpc.draining import SHUTTING_DOWN
from server.grpc.errors import status_for
from server.grpc.overload import CallLimits
from server.grpc.response_wire import length_delimited
from server.grpc.tensors import ParsedRequest

log = logging.getLogger(__name__)

Infer = Callable[[ParsedRequest], Awaitable[bytes]]
"""Serves one request and returns its serialized ModelInferResponse."""

Parse = Callable[[bytes], ParsedRequest]
"""One message of the stream as a ModelInferRequest; raises a ServerError when it does not decode."""

#: ModelStreamInferResponse.infer_response (field 2, length-delimited).
_INFER_RESPONSE_TAG = b"\x12"

#: Requests of one stream in progress or unsent at once; more wait in the stream's flow control.
MAX_IN_FLIGHT_PER_STREAM = 1024
#: Request and response bytes one stream holds at once (see StreamBudget).
MAX_STREAM_BYTES = 64 * 1024 * 1024


def _refusing(error: ServerError) -> Infer:
    """A handler that answers every request with `error` (as its error_message)."""

    async def refuse(request: ParsedRequest) -> bytes:
        raise error

    return refuse


async def _answer(raw: bytes, parse: Parse, infer: Infer, limits: CallLimits | None, draining: bool) -> bytes:
    """The response to one streamed request: served, or refused while draining or past the server's byte bound."""
    if draining:
        return await _respond(parse, _refusing(ShuttingDownError(SHUTTING_DOWN)), raw)
    if limits is None:
        return await _respond(parse, infer, raw)
    size = len(raw)
    try:
        limits.admit_bytes(size)
    except ResourceExhaustedError as error:
        return await _respond(parse, _refusing(error), raw)
    try:
        return await _respond(parse, infer, raw)
    finally:
        limits.release_bytes(size)


async def _respond(parse: Parse, infer: Infer, raw: bytes) -> bytes:
    """A serialized ModelStreamInferResponse: the response, or the error and the request's identity."""
    message: pb.ModelInferRequest | None = None
    try:
        request = parse(raw)
        message = request.message
        response = await infer(request)
        return length_delimited(_INFER_RESPONSE_TAG, response)
    except Exception as error:
        model = "" if message is None else message.model_name
        if not isinstance(error, ServerError):
            log.exception("unhandled error in a streamed request", extra={"model": model})
        code, text = status_for(error)
        echo = (
            pb.ModelInferResponse()  # nothing to echo from a message that did not decode
            if message is None
            else pb.ModelInferResponse(model_name=model, model_version=message.model_version, id=message.id)
        )
        return pb.ModelStreamInferResponse(
            error_message=f"{code.name}: {text}", infer_response=echo
        ).SerializeToString()


class StreamBudget:
    """What one stream may hold at once: requests being served or waiting to be written, and their bytes.

    A request's bytes (and, once answered, its response's) count until its response has been handed to
    gRPC for writing. A client that sends without reading therefore stops being read once the budget is
    full, and HTTP/2 flow control pushes back on it: the server's memory per stream stays bounded, at
    most `max_bytes` of requests admitted plus their responses (one oversized message may still pass
    alone, so that a big request is slow rather than refused).
    """

    def __init__(self, max_requests: int, max_bytes: int) -> None:
        self._max_requests = max_requests
        self._max_bytes = max_bytes
        self._requests = 0
        self._bytes = 0
        self._changed = asyncio.Condition()

    def _fits(self, size: int) -> bool:
        if self._requests == 0:
            return True
        return self._requests < self._max_requests and self._bytes + size <= self._max_bytes

    async def acquire(self, size: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._fits(size))
            self._requests += 1
            self._bytes += size

    def grow(self, size: int) -> None:
        """A held request's response is `size` bytes more to hold until written."""
        self._bytes += size

    async def release(self, size: int) -> None:
        async with self._changed:
            self._requests -= 1
            self._bytes -= size
            self._changed.notify_all()

    @property
    def held_bytes(self) -> int:
        return self._bytes


async def serve_stream(
    requests: AsyncIterator[bytes],
    parse: Parse,
    infer: Infer,
    budget: StreamBudget | None = None,
    stop: asyncio.Event | None = None,
    limits: CallLimits | None = None,
) -> AsyncIterator[bytes]:
    """Yield one serialized ModelStreamInferResponse per request message (wire bytes), in completion order.

    `budget` bounds what the stream holds (default: MAX_IN_FLIGHT_PER_STREAM requests, MAX_STREAM_BYTES).
    Once `stop` is set, requests still read are refused, and after the last in-flight response the stream
    raises ShuttingDownError. `limits` bounds the request bytes being served across the server: a request
    that would pass it gets a RESOURCE_EXHAUSTED error_message, like a unary call, and the stream goes on."""
    held = budget if budget is not None else StreamBudget(MAX_IN_FLIGHT_PER_STREAM, MAX_STREAM_BYTES)
    # Items: (bytes held for it, a response), an exception that broke the request stream, or None at the end.
    done: asyncio.Queue[tuple[int, bytes] | Exception | None] = asyncio.Queue()
    tasks: set[asyncio.Task[None]] = set()

    async def serve_one(raw: bytes) -> None:
        response = await _answer(raw, parse, infer, limits, draining=stop is not None and stop.is_set())
        held.grow(len(response))
        done.put_nowait((len(raw) + len(response), response))

    async def read_requests() -> None:
        try:
            async for raw in requests:
                await held.acquire(len(raw))
                task = asyncio.create_task(serve_one(raw))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
        except asyncio.CancelledError:
            raise
        except Exception as error:  # the request stream broke (e.g. the client went away)
            done.put_nowait(error)
        else:
            done.put_nowait(None)

    async def end_when_drained() -> None:
        assert stop is not None
        await stop.wait()
        while tasks:  # their responses are queued before the end mark
            await asyncio.gather(*list(tasks), return_exceptions=True)
        if not reader.done():  # else the client ended the stream itself, and it ends normally
            done.put_nowait(ShuttingDownError(SHUTTING_DOWN))

    reader = asyncio.create_task(read_requests())
    watcher = None if stop is None else asyncio.create_task(end_when_drained())
    try:
        while (item := await done.get()) is not None:
            if isinstance(item, Exception):
                raise item
            size, response = item
            yield response  # returns once gRPC has taken the message for writing
            await held.release(size)
    finally:
        # The client cancelled or the stream ended: stop reading and serving, quietly. Cancelled requests
        # are counted as CANCELLED where they were (the core) and never reach the log as errors.
        reader.cancel()
        others = list(tasks) if watcher is None else [watcher, *tasks]
        for task in others:
            task.cancel()
        await asyncio.gather(reader, *others, return_exceptions=True)
