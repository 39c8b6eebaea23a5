"""Backing off from a server that stopped answering, and giving up on it.

Against a dead server gRPC fails every call at once with UNAVAILABLE, so a load level would send thousands of
doomed requests a second and its error count would grow for the rest of the level without telling anything new.
Each client process keeps one `Reachability`: once every request for `WINDOW_S` has failed as unreachable, the
process sends one probe at a time, with exponential backoff (`FIRST_DELAY_S` doubling up to `MAX_DELAY_S`); any
answer from the server ends the backoff, and after `give_up_s` of nothing but unreachable failures the level stops.
Overload codes (RESOURCE_EXHAUSTED, DEADLINE_EXCEEDED) come from a live server and never count: they are measured.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Outcomes that mean the server was not reached, or refuses all work (gRPC maps a refused connection and a
#: server shutting down to UNAVAILABLE; the `CLIENT_` codes are exceptions raised in the client itself).
UNREACHABLE_CODES = frozenset(
    {"UNAVAILABLE", "CLIENT_ConnectionError", "CLIENT_ConnectionRefusedError", "CLIENT_OSError"}
)
#: Every request for this long must have failed as unreachable before backing off: long enough that a reload
#: briefly answering UNAVAILABLE is not mistaken for a dead server, short enough to stop the hammering quickly.
WINDOW_S = 0.2
#: ... and at least this many of them, so one slow failure is not a window.
MIN_FAILURES = 3
FIRST_DELAY_S = 0.05
MAX_DELAY_S = 1.0
#: The default of `--max-unreachable`: a restart of our server fits well within it.
GIVE_UP_S = 5.0


class Reachability:
    """Whether the server answers, from the outcomes of one client process's requests."""

    def __init__(self, give_up_s: float = GIVE_UP_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.give_up_s = give_up_s
        self._clock = clock
        self._since: float | None = None
        self._failures = 0
        self._delay = FIRST_DELAY_S

    def record(self, code: str) -> None:
        """Count one finished request by its code ("OK", a gRPC code name, or "CLIENT_<exception>")."""
        if code in UNREACHABLE_CODES:
            if self._since is None:
                self._since = self._clock()
            self._failures += 1
        else:
            self._since, self._failures, self._delay = None, 0, FIRST_DELAY_S

    @property
    def unreachable_s(self) -> float:
        """How long every request has failed as unreachable (0 after any other outcome)."""
        return 0.0 if self._since is None else self._clock() - self._since

    @property
    def down(self) -> bool:
        """Every request of the last `WINDOW_S` or more failed as unreachable: send probes, not load."""
        return self._failures >= MIN_FAILURES and self.unreachable_s >= WINDOW_S

    @property
    def gave_up(self) -> bool:
        """Unreachable for `give_up_s`: stop the level."""
        return self.down and self.unreachable_s >= self.give_up_s

    def next_delay(self) -> float:
        """Seconds to wait before the next probe: doubles on every call while down, capped at `MAX_DELAY_S`."""
        delay = self._delay
        self._delay = min(MAX_DELAY_S, self._delay * 2)
        return delay
