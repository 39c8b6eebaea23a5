"""One span per batch execution that carried sampled requests, linked to each of their spans."""

from __future__ import annotations

import time
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.trace import Link, Tracer

from server.tracing.requests import RequestSpan


class BatchTracer:
    """The batcher's traced-batch observer: an execution is recorded once, however many requests it served.

    A batch span is a root of its own trace, since its requests belong to different traces; span links
    (both ways: batch -> request spans, each request span -> batch) connect them. An execution with only one
    traced request is recorded on that request's span instead (`inference.batch.size`, `.requests`): a batch
    span would link to nothing else, and at low sampling rates nearly every traced request is alone in its
    batch, where a second span per request had cost about 1.5 % more instructions per request at 1 %.
    """

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer

    def executed(self, traces: Sequence[object], started_ns: int, rows: int, requests: int) -> None:
        """`traces`: the sampled requests' RequestSpans; `started_ns`: perf_counter_ns when the execution started;
        `rows` and `requests`: everything the execution served. Called on the event loop as the execution ends."""
        spans = [trace for trace in traces if isinstance(trace, RequestSpan)]
        if not spans:
            return
        ended = time.time_ns()
        started = ended - (time.perf_counter_ns() - started_ns)
        if len(spans) == 1:
            spans[0].executed(started, ended, None, rows, requests)
            return
        first = spans[0]
        batch = self._tracer.start_span(
            "inference.batch",
            Context(),  # a root: never the parent that happens to be current
            links=[Link(span.span_context) for span in spans],
            start_time=started,
            attributes={
                "inference.model.name": first.model,
                "inference.model.version": first.version,
                "inference.batch.size": rows,
                "inference.batch.requests": requests,
            },
        )
        batch.end(ended)
        context = batch.get_span_context()
        for span in spans:
            span.executed(started, ended, context, rows, requests)
