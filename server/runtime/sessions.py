"""The idle sessions of one loaded version: an instance is one session running one batch at a time.

An execution takes an idle session on the event loop and the worker thread gives it back the moment
the runtime returns, even if the awaiting caller was cancelled meanwhile, so a session is never handed
out while it still runs. Only the event loop takes and only `give_back` adds (list.pop and list.append
are atomic under the GIL), so the common path needs no lock: one pop per execution.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Any

from server.errors import ModelNotReadyError


class SessionPool:
    def __init__(self, sessions: Iterable[Any], label: str) -> None:
        self._idle: list[Any] = list(sessions)
        self._label = label
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def take(self) -> Any | None:
        """An idle session, or None when all are busy (then `await wait()`). Event loop only."""
        return self._idle.pop() if self._idle else None

    async def wait(self) -> Any:
        """Wait for a session to become idle and take it. Event loop only.

        Only needed when more executions than sessions run at once; the batcher's slots normally
        prevent that, so this is the rare path and may cost a future and a wake-up.
        """
        self._loop = asyncio.get_running_loop()
        while not self._idle:
            if self._closed:
                raise ModelNotReadyError(f"model {self._label} was unloaded")
            waiter = self._loop.create_future()
            self._waiters.append(waiter)
            try:
                # Re-checked after registering: a give_back that looked for waiters just before saw none.
                if not self._idle:
                    await waiter
            finally:
                self._waiters.remove(waiter)
                if self._idle and self._waiters:  # a wake-up meant for this cancelled waiter goes on
                    self._wake()
        return self._idle.pop()

    def give_back(self, session: Any) -> None:
        """Return a session that finished its execution. Safe from any thread."""
        if self._closed:  # an execution that outlived its version: let the session go
            return
        self._idle.append(session)
        if self._waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake)

    def close(self) -> None:
        """Drop the sessions (their memory goes with the last reference) and fail whoever waits."""
        self._closed = True
        self._idle.clear()
        if self._waiters:
            self._wake_all()

    def _wake(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
                return

    def _wake_all(self) -> None:
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
