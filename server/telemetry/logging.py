"""Structured logging: one JSON object per line (or plain text for humans) on stderr."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from server.telemetry.gone_peers import quiet_gone_peers

# Attributes every LogRecord has; anything else came from `extra=` and is emitted as a field.
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """Formats a record as JSON with its `extra` fields at the top level."""

    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, default=str)


class TextFormatter(logging.Formatter):
    """Human-readable lines that still show the `extra` fields."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging.Formatter's name)
        # A message can carry client text too (a library's error text quoting a request): control
        # characters in it are escaped, so that the line stays one line. Tracebacks follow it unchanged.
        line = super().formatMessage(record)
        return line if line.isprintable() else _escaped(line)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD and not k.startswith("_")}
        if extras:
            line += " " + " ".join(f"{key}={_field(value)}" for key, value in extras.items())
        return line


def _field(value: object) -> str:
    """A field's text, quoted and escaped when it holds spaces or control characters.

    Field values can come from clients (a model name, a request id): a newline in one must not start what
    reads as a new log line, nor a space what reads as another field.
    """
    text = str(value)
    if text and text.isprintable() and " " not in text:
        return text
    return json.dumps(text)


def _escaped(text: str) -> str:
    """`text` with each non-printable character written as its escape (\\n, \\x1b, \\u2028)."""
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def configure_logging(level: str, fmt: str) -> None:
    """Route the root logger to stderr with the chosen format. Called once by the CLI."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    quiet_gone_peers()
