"""RateLimitedLog: a client-triggered line at most once per interval, carrying the count left out."""

from __future__ import annotations

import logging

import pytest

from server.telemetry.ratelimit import RateLimitedLog


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_interval_with_the_count_of_those_left_out(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    limited = RateLimitedLog(logging.getLogger("test.ratelimit"), interval_s=10.0, clock=clock)
    caplog.set_level(logging.WARNING, logger="test.ratelimit")
    written = [limited.log("bad request", peer="p") for _ in range(1000)]
    assert written.count(True) == 1 and written[0]
    clock.now += 9.9
    assert not limited.log("bad request")
    clock.now += 0.1
    assert limited.log("bad request", peer="q")
    lines = [r for r in caplog.records if r.name == "test.ratelimit"]
    assert [(r.getMessage(), r.suppressed, r.peer) for r in lines] == [  # type: ignore[attr-defined]
        ("bad request", 0, "p"),
        ("bad request", 1000, "q"),
    ]
    assert all(r.levelno == logging.WARNING and not r.exc_info for r in lines)
