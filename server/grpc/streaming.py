"""ModelStreamInfer: many requests on one bidirectional stream, served concurrently.

Responses are sent as they complete, so one slow request does not hold back
the others (clients match them by `id`). A failed request becomes an
`error_message` on the stream; the stream itself stays open.
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

#: ModelStreamInferResponse.infer_response (field 2, length-delimited).
_INFER_RESPONSE_TAG = b"\x12"

#: Requests of one stream in progress at once; more wait in the stream's flow control.
MAX_IN_FLIGHT_PER_STREAM = 1024


async def _respond(infer: Infer, message: pb.ModelInferRequest) -> bytes:
    """A serialized ModelStreamInferResponse: the response, or the error and the request's identity."""
    try:
        response = await infer(message)
        return length_delimited(_INFER_RESPONSE_TAG, response)
    except Exception as error:
        if not isinstance(error, ServerError):
            log.exception("unhandled error in a streamed request", extra={"model": message.model_name})
        code, text = status_for(error)
        echo = pb.ModelInferResponse(model_name=message.model_name, model_version=message.model_version, id=message.id)
        return pb.ModelStreamInferResponse(
            error_message=f"{code.name}: {text}", infer_response=echo
        ).SerializeToString()


async def serve_stream(requests: AsyncIterator[pb.ModelInferRequest], infer: Infer) -> AsyncIterator[bytes]:
    """Yield one serialized ModelStreamInferResponse per request, in completion order."""
    # Items: a response, an exception that broke the request stream, or None at the end.
    done: asyncio.Queue[bytes | Exception | None] = asyncio.Queue()
    slots = asyncio.Semaphore(MAX_IN_FLIGHT_PER_STREAM)
    tasks: set[asyncio.Task[None]] = set()

    async def serve_one(message: pb.ModelInferRequest) -> None:
        try:
            done.put_nowait(await _respond(infer, message))
        finally:
            slots.release()

    async def read_requests() -> None:
        try:
            async for message in requests:
                await slots.acquire()
                task = asyncio.create_task(serve_one(message))
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
