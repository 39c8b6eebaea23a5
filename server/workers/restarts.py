"""How often a crashed worker may be replaced before the supervisor gives up."""

from __future__ import annotations

from collections import deque


class RestartBudget:
    """Allows at most `limit` restarts within any `window_s` seconds (a crash loop stops the server)."""

    def __init__(self, limit: int = 5, window_s: float = 60.0) -> None:
        self._limit = limit
        self._window_s = window_s
        self._times: deque[float] = deque()

    def allow(self, now: float) -> bool:
        """Spend one restart at monotonic time `now`; False when the budget is used up."""
        while self._times and now - self._times[0] >= self._window_s:
            self._times.popleft()
        if len(self._times) >= self._limit:
            return False
        self._times.append(now)
        return True
