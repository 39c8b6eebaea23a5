"""JSON messages over a multiprocessing pipe, read from the event loop, with request/reply matching.

Every message is one JSON object. A request carries `id` and gets exactly one message of type
"reply" with the same `id`; everything else goes to the channel's `on_message`. Messages are small
(a model name, a routing change), so a blocking send on a pipe never holds the loop for long.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

Message = dict[str, Any]


class ChannelClosedError(ConnectionError):
    """The other side of the pipe is gone."""


class Channel:
    """One end of the pipe. `start()` inside the running loop; `close()` fails the requests still waiting."""

    def __init__(self, conn: Connection, on_message: Callable[[Message], None]) -> None:
        self._conn = conn
        self._on_message = on_message
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Message]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._conn.fileno(), self._readable)

    def send(self, message: Message) -> bool:
        """Send one message; False if the other side is gone."""
        if self.closed:
            return False
        try:
            self._conn.send_bytes(json.dumps(message).encode())
        except (OSError, ValueError):
            self.close()
            return False
        return True

    async def request(self, message: Message) -> Message:
        """Send a request and wait for its reply; ChannelClosedError if the other side goes away first."""
        assert self._loop is not None, "start() the channel first"
        ident = next(self._ids)
        future: asyncio.Future[Message] = self._loop.create_future()
        self._waiting[ident] = future
        try:
            if not self.send({**message, "id": ident}):
                raise ChannelClosedError("the other process is gone")
            return await future
        finally:
            self._waiting.pop(ident, None)

    def reply(self, request: Message, **fields: Any) -> None:
        self.send({"type": "reply", "id": request["id"], **fields})

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            with contextlib.suppress(ValueError, OSError):
                self._loop.remove_reader(self._conn.fileno())
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(ChannelClosedError("the other process is gone"))
        with contextlib.suppress(OSError):
            self._conn.close()

    def _readable(self) -> None:
        try:
            raw = self._conn.recv_bytes()
        except (EOFError, OSError):
            self.close()
            return
        try:
            message = json.loads(raw)
        except ValueError:
            log.error("unreadable message on the worker pipe; ignored", extra={"bytes": len(raw)})
            return
        if message.get("type") == "reply":
            future = self._waiting.get(message.get("id", -1))
            if future is not None and not future.done():
                future.set_result(message)
            return
        self._on_message(message)
