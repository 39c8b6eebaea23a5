"""The native frontend's Python side: calls the C++ server delegates, run by the same grpc handlers as grpc.aio's.

The C++ server (native/src/server.cpp) takes every call on its own I/O thread and never touches Python; it queues
events (started, message, half-closed, done) and makes an eventfd readable. The event loop reads them in batches
(`loop.add_reader`), runs each call's handler as a task with a `NativeContext`, and answers through `write` and
`finish`, which hand the bytes back to C++ without waiting. So the loop never blocks on gRPC, and gRPC's threads
never wait for the GIL.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from types import ModuleType
from typing import Any

import grpc
from grpc.aio import AbortError

from server.native.context import NativeContext, auth_properties, invocation_metadata
from server.native.inference_path import NativeInferencePath
from server.types import Drawn, DrawnMessage

log = logging.getLogger(__name__)

_STARTED, _MESSAGE, _HALF_CLOSED, _DONE, _WRITTEN, _BATCH, _TICKET, _DROPPED = 0, 1, 2, 3, 4, 5, 6, 7
#: Messages a handler may have going out on one call before its next write waits: grpc.aio waits for each write,
#: so that a client that does not read holds the handler back; two keep the pipe full without unbounded memory.
WRITE_WINDOW = 2
#: grpc's answers where no handler runs, word for word, so clients see the same on both frontends.
_METHOD_NOT_FOUND = "Method not found!"
_NOT_SERIALIZED = "Failed to serialize response!"
_END_OF_STREAM = object()


class _Call:
    """One delegated call: its handler's task, the requests not yet read, its context."""

    __slots__ = ("answered", "call_id", "context", "gone", "handler", "requests", "sent", "task", "unsent")

    def __init__(self, call_id: int, handler: grpc.RpcMethodHandler[Any, Any] | None, context: NativeContext) -> None:
        self.call_id = call_id
        self.handler = handler
        self.context = context
        # Requests of a client-streaming call wait here for the handler's iterator.
        self.requests: asyncio.Queue[object] | None = None
        self.task: asyncio.Task[None] | None = None
        self.answered = False
        self.gone = False
        self.unsent = 0  # written by the handler, not yet gone out
        self.sent = asyncio.Event()


class NativeGrpcServer:
    """A bound native gRPC server serving `handlers` ({"/package.Service/Method": handler}); shaped like the
    part of grpc.aio.Server the app uses (`start`, `stop`)."""

    def __init__(
        self,
        extension: ModuleType,
        handlers: Mapping[str, grpc.RpcMethodHandler[Any, Any]],
        address: str,
        max_message_bytes: int,
        reuse_port: bool,
        tls: tuple[bytes, bytes, bytes | None] | None = None,
        inference_path: NativeInferencePath | None = None,
        limits: tuple[int, int] = (4096, 1 << 30),
    ) -> None:
        """Binds `address` (raises OSError when it cannot); `tls` is (private key, certificate chain, client CA or
        None) in PEM. `inference_path` answers plain ModelInfer calls in C++ (None: every call comes to Python);
        `limits` bounds its calls and request bytes (CallLimits' numbers)."""
        key, certificate, client_ca = tls if tls is not None else (b"", b"", None)
        try:
            self._native = extension.NativeServer(
                address,
                max_message_bytes=max_message_bytes,
                reuse_port=reuse_port,
                tls_private_key=key.decode(),
                tls_certificate=certificate.decode(),
                tls_client_ca=(client_ca or b"").decode(),
                max_calls=limits[0],
                max_bytes=limits[1],
            )
        except RuntimeError as error:
            raise OSError(f"could not bind gRPC to {address}: {error}") from None
        self.port: int = self._native.port
        self._handlers = dict(handlers)
        self._calls: dict[int, _Call] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped = False
        self._inference_path = inference_path
        if inference_path is not None:
            inference_path.attach(self._native)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._native.event_fd, self._take_events)

    async def stop(self, grace: float | None) -> None:
        """Stops taking calls; those in progress get `grace` seconds (None: no limit) and are then cancelled."""
        if self._stopped:
            return
        self._stopped = True
        # C++ waits for the calls in progress, which this loop keeps answering meanwhile.
        await asyncio.to_thread(self._native.stop, 3600.0 * 24 if grace is None else grace)
        self._take_events()  # the done events of the calls it cancelled
        if self._inference_path is not None:
            await self._inference_path.stop()
        if self._loop is not None:
            self._loop.remove_reader(self._native.event_fd)
        tasks = [call.task for call in self._calls.values() if call.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._calls.clear()

    # ------------------------------------------------------------ events

    def _take_events(self) -> None:
        for event in self._native.take_events():
            kind, call_id = event[0], event[1]
            if kind == _STARTED:
                self._started(call_id, *event[2:])
                continue
            if kind == _BATCH:
                if self._inference_path is not None:
                    self._inference_path.on_batch(event)
                else:
                    self._native.release(call_id)
                continue
            if kind == _TICKET:
                if self._inference_path is not None:
                    self._inference_path.on_ticket(event)
                continue
            if kind == _DROPPED:
                if self._inference_path is not None:
                    self._inference_path.on_dropped(event)
                continue
            call = self._calls.get(call_id)
            if call is None:  # answered and forgotten: a late read or done event
                continue
            if kind == _MESSAGE:
                self._message(call, event[2], event[3])
            elif kind == _WRITTEN:
                call.unsent -= 1
                call.sent.set()
            elif kind == _HALF_CLOSED:
                if call.requests is not None:
                    call.requests.put_nowait(_END_OF_STREAM)
                elif call.task is None and not call.answered:
                    self._finish(call, grpc.StatusCode.INTERNAL, "the call ended without its request message")
            else:
                self._done(call, event[2])

    def _started(
        self,
        call_id: int,
        method: str,
        metadata: list[tuple[str, bytes]],
        remaining: float | None,
        peer: str,
        auth: list[tuple[str, bytes]],
        drawn: tuple[bool, bool, bool, bool] = (False, False, False, False),
    ) -> None:
        handler = self._handlers.get(method)
        serialize = None if handler is None else handler.response_serializer
        context = NativeContext(
            invocation_metadata(metadata),
            None if remaining is None else time.monotonic() + remaining,
            peer,
            auth_properties(auth),
            lambda message: self._write(call, message),
            serialize,
            Drawn(*drawn),
        )
        call = _Call(call_id, handler, context)
        self._calls[call_id] = call
        if handler is None:
            self._finish(call, grpc.StatusCode.UNIMPLEMENTED, _METHOD_NOT_FOUND)
        elif handler.request_streaming:
            call.requests = asyncio.Queue()
            call.task = asyncio.create_task(self._serve(call, self._requests(call)))

    def _message(self, call: _Call, raw: bytes, drawn: tuple[bool, bool, bool, bool]) -> None:
        if call.requests is not None:
            if drawn[0]:  # a streamed message the native path drew for this path: its draws go with it
                marked = DrawnMessage(raw)
                marked.drawn = Drawn(*drawn)
                raw = marked
            call.requests.put_nowait(raw)
        elif call.task is None and not call.answered:  # a unary request: the handler starts with it
            call.task = asyncio.create_task(self._serve(call, raw))

    def _done(self, call: _Call, cancelled: bool) -> None:
        call.gone = True
        call.context.mark_done(cancelled)
        if call.task is not None and not call.task.done():
            call.task.cancel()  # the client has gone (cancelled, deadline passed): stop working for it

    # ------------------------------------------------------------ serving

    async def _requests(self, call: _Call) -> AsyncIterator[Any]:
        assert call.requests is not None and call.handler is not None
        deserialize = call.handler.request_deserializer
        while True:
            raw = await call.requests.get()
            if raw is _END_OF_STREAM:
                return
            assert isinstance(raw, bytes)
            # One message read ahead, no more: a handler that stops pulling requests stops the reads, and HTTP/2
            # flow control then holds the client back (what grpc.aio does for a stream nobody reads).
            self._native.read_next(call.call_id)
            yield raw if deserialize is None else deserialize(raw)

    async def _serve(self, call: _Call, request: bytes | AsyncIterator[Any]) -> None:
        handler, context = call.handler, call.context
        assert handler is not None
        try:
            if isinstance(request, bytes) and handler.request_deserializer is not None:
                request = handler.request_deserializer(request)  # raising: UNKNOWN, as on grpc.aio
            # The handlers are grpc.aio's (coroutines, async generators); grpc's stubs type them as the sync API's.
            behaviour: Callable[..., Any] | None = (
                handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream
            )
            assert behaviour is not None
            result = behaviour(request, context)
            if handler.response_streaming:
                if inspect.isasyncgen(result):
                    async for response in result:
                        await context.write(response)
                elif inspect.isawaitable(result):  # writes with context.write
                    await result
                last = None
            else:
                response = await result if inspect.isawaitable(result) else result
                last = self._serialized(handler, response)
                if last is None:
                    self._finish(call, grpc.StatusCode.INTERNAL, _NOT_SERIALIZED)
                    return
            self._finish(call, context.status_code, context.status_details, last)
        except AbortError:
            self._finish(call, context.status_code, context.status_details)
        except asyncio.CancelledError:
            self._finish(call, grpc.StatusCode.CANCELLED, "cancelled")
            if not call.gone:
                raise  # cancelled from outside (the server stopping), not by the client leaving
        except Exception as error:
            log.exception("unhandled error in a native-frontend call")
            self._finish(call, grpc.StatusCode.UNKNOWN, f"Unexpected {type(error)}: {error}")

    async def _write(self, call: _Call, message: bytes | str) -> None:
        if not self._native.write(call.call_id, _wire(message)):
            return  # the call is finishing or gone: nothing more reaches the client
        call.unsent += 1
        while call.unsent > WRITE_WINDOW:
            call.sent.clear()
            await call.sent.wait()

    @staticmethod
    def _serialized(handler: grpc.RpcMethodHandler[Any, Any], response: Any) -> bytes | None:
        serialize = handler.response_serializer
        if serialize is None:
            return _wire(response)
        try:
            return bytes(serialize(response))
        except Exception:
            log.exception("a response did not serialize")
            return None

    def _finish(self, call: _Call, code: grpc.StatusCode, details: str | None, last: bytes | None = None) -> None:
        if call.answered:
            return
        call.answered = True
        trailing = [
            (key, value.encode("latin-1") if isinstance(value, str) else value) for key, value in call.context.trailing
        ]
        # "replace": a lone surrogate in client text must not stop the answer (grpc sends details as UTF-8).
        self._native.finish(call.call_id, code.value[0], (details or "").encode("utf-8", "replace"), last, trailing)
        # Forgotten at once: its later events (the read that ends, gRPC's done) only find nothing to do.
        self._calls.pop(call.call_id, None)


def _wire(message: bytes | str) -> bytes:
    """A handler's unserialized answer as wire bytes: grpc sends a str as UTF-8."""
    return message.encode("utf-8") if isinstance(message, str) else bytes(message)
