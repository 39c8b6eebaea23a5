"""The supervisor's view of one worker: its process and pipe, watched from the event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnContext, SpawnProcess

from server.settings import ServerSettings
from server.workers.worker import worker_main


class WorkerHandle:
    """One started worker. `ready` follows its "ready"/"draining" messages and turns False on exit."""

    def __init__(self, slot: int, process: SpawnProcess, conn: Connection, loop: asyncio.AbstractEventLoop) -> None:
        self.slot = slot
        self.pid = process.pid or 0
        self.ready = False
        self.exitcode: int | None = None
        self._process = process
        self._conn = conn
        self._loop = loop

    def watch(self, on_event: Callable[[WorkerHandle, str], None], on_exit: Callable[[WorkerHandle], None]) -> None:
        """Call on_event for each message and on_exit once the process has ended; no polling."""
        self._loop.add_reader(self._conn.fileno(), self._receive, on_event)
        # The sentinel fd turns readable when the process ends, however it ends.
        self._loop.add_reader(self._process.sentinel, self._exited, on_exit)

    def terminate(self) -> None:
        """SIGTERM: the worker drains in-flight requests and exits."""
        if self.exitcode is None:
            self._process.terminate()

    def kill(self) -> None:
        if self.exitcode is None:
            self._process.kill()

    def _receive(self, on_event: Callable[[WorkerHandle, str], None]) -> None:
        try:
            event = self._conn.recv_bytes().decode()
        except (EOFError, OSError):
            self._loop.remove_reader(self._conn.fileno())  # the exit itself arrives through the sentinel
            return
        self.ready = event == "ready"
        on_event(self, event)

    def _exited(self, on_exit: Callable[[WorkerHandle], None]) -> None:
        self._loop.remove_reader(self._process.sentinel)
        self._loop.remove_reader(self._conn.fileno())
        self._process.join()
        self.exitcode = self._process.exitcode
        self.ready = False
        self._conn.close()
        self._process.close()
        on_exit(self)


def start_worker(
    context: SpawnContext, settings: ServerSettings, slot: int, loop: asyncio.AbstractEventLoop
) -> WorkerHandle:
    """Spawn a fresh interpreter running worker_main; it inherits the environment (metrics dir)."""
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=worker_main, args=(settings, slot, sender), name=f"worker-{slot}", daemon=True)
    process.start()
    sender.close()  # only the child writes; dropping our copy lets its exit show up as EOF
    return WorkerHandle(slot, process, receiver, loop)
