"""The supervisor's view of one worker: its process and its two-way channel, watched from the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

from server.coordination.channel import Channel, Message
from server.coordination.remote import MODELS_NOT_READY, MODELS_READY
from server.settings import ServerSettings
from server.workers.worker import worker_main


class WorkerHandle:
    """One started worker. `ready` follows its "ready"/"draining" events and turns False on exit."""

    def __init__(self, slot: int, process: SpawnProcess, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.slot = slot
        self.pid = process.pid or 0
        self.ready = False
        self.models_ready = True
        """False while the worker reports that some model has no ready version (strict readiness)."""
        self.exitcode: int | None = None
        self._process = process
        self._loop = loop
        self._on_message: Callable[[WorkerHandle, Message], None] | None = None
        self.channel = Channel(conn, self._received)

    def watch(
        self, on_message: Callable[[WorkerHandle, Message], None], on_exit: Callable[[WorkerHandle], None]
    ) -> None:
        """Call on_message for each message (events, requests, reports) and on_exit once the process ended."""
        self._on_message = on_message
        self.channel.start()
        # The sentinel fd turns readable when the process ends, however it ends.
        self._loop.add_reader(self._process.sentinel, self._exited, on_exit)

    def terminate(self) -> None:
        """SIGTERM: the worker drains in-flight requests and exits."""
        if self.exitcode is None:
            self._process.terminate()

    def kill(self) -> None:
        if self.exitcode is None:
            self._process.kill()

    def _received(self, message: Message) -> None:
        if message.get("type") == "event":
            event = message.get("event")
            if event in (MODELS_READY, MODELS_NOT_READY):
                self.models_ready = event == MODELS_READY
            else:
                self.ready = event == "ready"
        if self._on_message is not None:
            self._on_message(self, message)

    def _exited(self, on_exit: Callable[[WorkerHandle], None]) -> None:
        self._loop.remove_reader(self._process.sentinel)
        self._process.join()
        self.exitcode = self._process.exitcode
        self.ready = False
        self.channel.close()
        self._process.close()
        on_exit(self)


def start_worker(
    context: SpawnContext, settings: ServerSettings, slot: int, loop: asyncio.AbstractEventLoop
) -> WorkerHandle:
    """Spawn a fresh interpreter running worker_main; it inherits the environment (metrics dir)."""
    mine, theirs = context.Pipe(duplex=True)
    process = context.Process(target=worker_main, args=(settings, slot, theirs), name=f"worker-{slot}", daemon=True)
    process.start()
    theirs.close()  # only the child uses that end; dropping our copy lets its exit show up as EOF
    return WorkerHandle(slot, process, mine, loop)
