"""ModelStreamInfer: many requests on one bidirectional stream, served concurrently.

Responses are sent as they complete, so one slow request does not hold back
the others (clients match them by `id`). A failed request becomes an
`error_message` on the stream; the stream itself stays open. That includes a
message that is not a valid ModelInferRequest: it arrives as bytes and is parsed
here, per request, so one bad message fails only itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from oip.v1 import grpc_service_pb2 as pb
from server.errors import ServerError
from server.grpc.errors import status_for
from server.grpc.response_wire import length_delimited

log = logging.getLogger(__name__)

Infer = Callable[[pb.ModelInferRequest], Awaitable[bytes]]
"""Serves one request and returns its serialized ModelInferResponse."""

Parse = Callable[[bytes], pb.ModelInferRequest]
"""One message of the stream as a ModelInferRequest; raises a ServerError when it does not decode."""

#: ModelStreamInferResponse.infer_response (field 2, length-delimited).
_INFER_RESPONSE_TAG = b"\x12"

#: Requests of one stream in progress at once; more wait in the stream's flow control.
MAX_IN_FLIGHT_PER_STREAM = 1024


async def _respond(parse: Parse, infer: Infer, raw: bytes) -> bytes:
    """A serialized ModelStreamInferResponse: the response, or the error and the request's identity."""
    message: pb.ModelInferRequest | None = None
    try:
        message = parse(raw)
        response = await infer(message)
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


async def serve_stream(requests: AsyncIterator[bytes], parse: Parse, infer: Infer) -> AsyncIterator[bytes]:
    """Yield one serialized ModelStreamInferResponse per request message (wire bytes), in completion order."""
    # Items: a response, an exception that broke the request stream, or None at the end.
    done: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT_PER_STREAM)
    tasks: set[asyncio.Task[None]] = set()

    async def serve_one(raw: bytes) -> None:
        try:
            done.put_nowait(await _respond(parse, infer, raw))
        finally:
            slots.release()

    async def read_requests() -> None:
        try:
            async for raw in requests:
                await slots.acquire()
                task = asyncio.create_task(serve_one(raw))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            while tasks:
                await asyncio.gather(*list(tasks))
        except Exception as error:
            done.put_nowait(error)
        else:
            done.put_nowait(None)

    reader = asyncio.create_task(read_requests())
    try:
        while (item := await done.get()) is not None:
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        reader.cancel()
        for task in list(tasks):
            task.cancel()
