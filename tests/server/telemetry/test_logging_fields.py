"""Log fields from clients cannot forge lines; trace ids come from a valid W3C traceparent only."""

from __future__ import annotations

import logging

from server.telemetry.logging import TextFormatter
from server.telemetry.tracecontext import trace_id_from

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_client_controlled_field_cannot_start_a_new_line() -> None:
    record = logging.makeLogRecord({"msg": "request failed", "levelname": "INFO", "name": "server.requests"})
    record.model = 'fraud\n2026-11-30 INFO server: forged line code="OK"'
    record.code = "NOT_FOUND"
    line = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert "\n" not in line
    assert 'model="fraud\\n2026-11-30 INFO server: forged line code=\\"OK\\""' in line
    assert line.endswith("code=NOT_FOUND")


def test_trace_ids_from_traceparent() -> None:
    assert trace_id_from([("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01")]) == TRACE
    assert trace_id_from([("user-agent", "x"), ("traceparent", f" 00-{TRACE}-00f067aa0ba902b7-00 ")]) == TRACE
    assert trace_id_from([("traceparent", "00-" + "0" * 32 + "-00f067aa0ba902b7-01")]) == ""  # invalid all-zero id
    assert trace_id_from([("traceparent", "garbage")]) == ""
    assert trace_id_from(None) == "" and trace_id_from([]) == ""


def test_a_message_with_client_text_stays_one_line() -> None:
    record = logging.makeLogRecord(
        {"msg": "refused %s", "args": ("fraud\n2026-11-30 INFO forged\x1b[2J",), "levelname": "WARNING", "name": "x"}
    )
    line = TextFormatter("%(levelname)s %(name)s: %(message)s").format(record)
    assert line == "WARNING x: refused fraud\\n2026-11-30 INFO forged\\x1b[2J"
