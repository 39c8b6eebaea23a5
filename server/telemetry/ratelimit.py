"""A log line that a client can trigger at will, written at most once per interval.

Events such as undecodable requests cost the client nothing to send; logging each one would let anyone
flood the log (and the disk behind it). The line that is written carries how many were left out before it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

#: Seconds between two lines of one rate-limited event.
DEFAULT_INTERVAL_S = 10.0


class RateLimitedLog:
    """Writes one event's line at most once per `interval_s`, with a `suppressed` count of the lines left out."""

    def __init__(
        self,
        logger: logging.Logger,
        level: int = logging.WARNING,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._level = level
        self._interval_s = interval_s
        self._clock = clock
        self._next_at: float | None = None
        self._suppressed = 0

    def log(self, message: str, **fields: Any) -> bool:
        """Write the line unless one was written less than `interval_s` ago; True when written."""
        now = self._clock()
        if self._next_at is not None and now < self._next_at:
            self._suppressed += 1
            return False
        self._next_at = now + self._interval_s
        suppressed, self._suppressed = self._suppressed, 0
        self._logger.log(self._level, message, extra={**fields, "suppressed": suppressed})
        return True
