"""The sampled access log: one structured line for a share of the successful requests.

Off by default (no AccessLog is built). No payloads: model, served version, request id, trace id and duration.
Client-controlled text goes into fields, which both log formats escape (see telemetry.logging).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from random import random
from typing import Any

from server.telemetry.tracecontext import trace_id_from

log = logging.getLogger("server.access")


class AccessLog:
    """Logs each successful request with probability `sample` (1.0: every one)."""

    def __init__(self, sample: float, draw: Callable[[], float] = random) -> None:
        """`draw` returns a uniform number in [0, 1) (a parameter so that tests can fix it)."""
        if not 0.0 < sample <= 1.0:
            raise ValueError(f"access log sample must be in (0, 1], not {sample}")
        self._sample = sample
        self._draw = draw

    @property
    def sample(self) -> float:
        return self._sample

    def answered(
        self,
        model: str,
        version: str,
        request_id: str,
        duration_ns: int,
        trace_id: str | None,
        metadata: Callable[[], Any] | None,
        decided: bool | None = None,
    ) -> None:
        """One request answered OK. `trace_id` is its span's, when it was traced; else the caller's traceparent
        (in `metadata`, the transport's (key, value) pairs, fetched only for a line that is written) gives it.
        `decided`: the native frontend's draw for the log, when it made one (drawing again would skew the share)."""
        if decided is None:
            decided = self._sample >= 1.0 or self._draw() < self._sample
        if not decided:
            return
        if trace_id is None:
            trace_id = trace_id_from(None if metadata is None else metadata())
        log.info(
            "request served",
            extra={
                "event": "request_served",
                "model": model,
                "version": version,
                "code": "OK",
                "request_id": request_id,
                "trace_id": trace_id,
                "duration_ms": round(duration_ns / 1e6, 3),
            },
        )
