"""server.telemetry.access: a sampled share of successful requests, one escaped line each, no payloads."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from server.telemetry.access import AccessLog

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Lines:
    """The access log's records (caplog's list is replaced between a test's phases, so read it late)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __call__(self) -> list[logging.LogRecord]:
        return [record for record in self._caplog.records if record.name == "server.access"]


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> Iterator[Lines]:
    with caplog.at_level(logging.INFO, logger="server.access"):
        yield Lines(caplog)


def test_sample_one_logs_every_request_with_its_fields(lines: Lines) -> None:
    log = AccessLog(1.0)
    for index in range(5):
        log.answered("fraud", "2", f"req-{index}", 1_234_567, None, None)
    assert len(lines()) == 5
    record = lines()[0]
    fields = {key: getattr(record, key) for key in ("event", "model", "version", "code", "request_id", "trace_id")}
    assert fields == {
        "event": "request_served",
        "model": "fraud",
        "version": "2",
        "code": "OK",
        "request_id": "req-0",
        "trace_id": "",
    }
    assert record.duration_ms == 1.235  # type: ignore[attr-defined]


def test_a_fraction_is_drawn_per_request(lines: Lines) -> None:
    draws = iter([0.05, 0.5, 0.099, 0.1, 0.9])
    log = AccessLog(0.1, draw=lambda: next(draws))
    for index in range(5):
        log.answered("fraud", "1", str(index), 1, None, None)
    assert [record.request_id for record in lines()] == ["0", "2"]  # type: ignore[attr-defined]


def test_the_trace_id_is_the_spans_else_the_callers(lines: Lines) -> None:
    log = AccessLog(1.0)
    log.answered("m", "1", "", 1, "ab" * 16, lambda: [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01")])
    log.answered("m", "1", "", 1, None, lambda: [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01")])
    assert [record.trace_id for record in lines()] == ["ab" * 16, TRACE]  # type: ignore[attr-defined]


def test_metadata_is_read_only_for_a_line_that_is_written(lines: Lines) -> None:
    def metadata() -> list[tuple[str, str]]:
        raise AssertionError("metadata read for a request that is not logged")

    AccessLog(0.5, draw=lambda: 0.7).answered("m", "1", "", 1, None, metadata)
    assert lines() == []


@pytest.mark.parametrize("sample", [0.0, -0.1, 1.5])
def test_a_sample_outside_zero_to_one_is_refused(sample: float) -> None:
    with pytest.raises(ValueError, match="access log sample"):
        AccessLog(sample)
