"""One asyncio lock per key (a model name), kept only while someone holds or waits for it.

A plain `dict[str, asyncio.Lock]` keeps an entry for every key ever asked for; keys come from
clients (admin RPCs name models), so such a table grows without bound. Here an entry counts its
users and goes away when the last one leaves, so the table's size is the number of keys in use.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    """Holders and waiters: the entry is dropped when this returns to 0."""


class KeyedLocks:
    """Mutual exclusion per key. Use only from the event loop that runs the holders."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __len__(self) -> int:
        """Keys with a holder or a waiter right now."""
        return len(self._entries)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s lock for the body; waiters are served in arrival order (asyncio.Lock is fair)."""
        entry = self._entries.get(key)
        if entry is None:
            # Created here, inside the running loop, never in __init__ (STYLE.md lesson 9).
            entry = self._entries[key] = _Entry()
        entry.users += 1
        try:
            async with entry.lock:
                yield
        finally:
            # Also runs when a waiter is cancelled before it got the lock.
            entry.users -= 1
            if entry.users == 0:
                del self._entries[key]
