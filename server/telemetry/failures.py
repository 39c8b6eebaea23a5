"""One structured log line per failed request: model, served version, status code, request and trace ids.

No payloads: the error message names what was wrong (it never carries tensor data). Client-controlled text
(the model name, the request id) goes into fields, which both log formats escape, cut to a readable length
(`server.names.shown`) so that a 100 kB name does not make a 100 kB line.
"""

from __future__ import annotations

import logging
from typing import Any

from server.names import shown
from server.telemetry.tracecontext import trace_id_from

log = logging.getLogger("server.requests")


def log_failed_request(
    model: str, version: str, code: str, request_id: str, metadata: Any, error: BaseException
) -> None:
    """`metadata` is the transport's (key, value) pairs, read only for the caller's trace id."""
    log.info(
        "request failed",
        extra={
            "event": "request_failed",
            "model": shown(model),
            "version": version,
            "code": code,
            "request_id": shown(request_id),
            "trace_id": trace_id_from(metadata),
            "error": str(error),
        },
    )
