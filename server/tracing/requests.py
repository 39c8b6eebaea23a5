"""A SERVER span per sampled inference request, child of the caller's span from its W3C `traceparent`.

RequestTracer.start  -> a RequestSpan, or None for a request that is not sampled (nothing built for it)
RequestSpan          -> the `trace` a request carries through the batcher; the batch tracer marks its
                        execution on it, the transport ends it with the gRPC status.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanContext, SpanKind, Status, StatusCode, Tracer, format_trace_id
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from server.tracing.sampling import SamplingPolicy, parent_sampled

Metadata = Collection[tuple[str, Any]]
"""gRPC invocation metadata: (key, value) pairs with lower-case keys; values of `-bin` keys are bytes."""

#: rpc.service of the RPC semantic conventions: the proto package and service.
RPC_SERVICE = "inference.GRPCInferenceService"


class _MetadataGetter(Getter[Metadata]):
    """Lets the W3C propagator read gRPC metadata pairs."""

    def get(self, carrier: Metadata, key: str) -> list[str] | None:
        values = [value for name, value in carrier if name == key and isinstance(value, str)]
        return values or None

    def keys(self, carrier: Metadata) -> list[str]:
        return [name for name, _ in carrier]


_GETTER = _MetadataGetter()


class RequestSpan:
    """The span of one sampled request, from the RPC's arrival to its status.

    Queue wait and compute are events on it rather than child spans: a traced request's cost is mostly creating
    and OTLP-encoding its spans, and two child spans had cost 2.06 M instead of 1.70 M instructions per request
    under always_on (callgrind, docs/benchmarks.md run 6).
    """

    __slots__ = ("_span", "model", "trace_id", "version")

    def __init__(self, span: Span) -> None:
        self._span = span
        self.trace_id = format_trace_id(span.get_span_context().trace_id)
        """32 hex digits: what exemplars and log lines carry."""
        self.model = ""
        self.version = ""

    @property
    def span_context(self) -> SpanContext:
        return self._span.get_span_context()

    def decoded(self, model: str, request_id: str) -> None:
        self.model = model
        self._span.set_attributes({"inference.model.name": model, "inference.request.id": request_id})

    def routed(self, version: str) -> None:
        """A version took the request: it waits in that version's queue from now."""
        self.version = version
        self._span.set_attribute("inference.model.version", version)
        self._span.add_event("inference.queued")

    def executed(self, started_ns: int, ended_ns: int, batch: SpanContext | None, rows: int, requests: int) -> None:
        """Its batch ran from `started_ns` to `ended_ns` (epoch ns): the queue wait ends, compute starts and ends.
        `batch` is the batch span shared with the other traced requests, None when this was the only one."""
        self._span.add_event("inference.compute.start", timestamp=started_ns)
        self._span.add_event("inference.compute.end", timestamp=ended_ns)
        if batch is not None:
            self._span.add_link(batch)
        else:  # the execution is recorded here, once, as it would be on a batch span
            self._span.set_attributes({"inference.batch.size": rows, "inference.batch.requests": requests})

    def succeeded(self) -> None:
        self._span.set_attribute("rpc.grpc.status_code", 0)
        self._span.end()

    def failed(self, code: int, description: str) -> None:
        """Ends the span with status ERROR; `code` is the numeric gRPC status, `description` "NAME: message"."""
        self._span.set_attribute("rpc.grpc.status_code", code)
        self._span.set_status(Status(StatusCode.ERROR, description))
        self._span.end()


class RequestTracer:
    """Decides, per request, whether it is sampled, and starts the span of those that are."""

    def __init__(self, tracer: Tracer, policy: SamplingPolicy) -> None:
        self._tracer = tracer
        self._policy = policy
        self._propagator = TraceContextTextMapPropagator()
        self._attributes: dict[str, dict[str, str]] = {}

    @property
    def policy(self) -> SamplingPolicy:
        return self._policy

    def start(
        self, method: str, metadata: Callable[[], Metadata | None], decided: bool | None = None
    ) -> RequestSpan | None:
        """The span of a request to `method`, or None when it is not sampled.

        `metadata` is called only when the decision needs the caller's flag or the request is sampled:
        grpc.aio rebuilds the metadata tuple on each call (about 12,900 instructions). `decided`: the native
        frontend's decision by the same policy, when it made one (deciding again would skew the ratio).
        """
        policy = self._policy
        if decided is not None:
            if not decided:
                return None
            pairs = metadata() or ()
        elif policy.parent_based:
            pairs = metadata() or ()
            if not policy.sampled(_caller_sampled(pairs)):
                return None
        elif policy.sampled(None):
            pairs = metadata() or ()
        else:
            return None
        parent = self._propagator.extract(pairs, Context(), _GETTER)
        span = self._tracer.start_span(
            f"{RPC_SERVICE}/{method}", parent, SpanKind.SERVER, attributes=self._rpc_attributes(method)
        )
        return RequestSpan(span)

    def _rpc_attributes(self, method: str) -> dict[str, str]:
        attributes = self._attributes.get(method)
        if attributes is None:
            attributes = {"rpc.system": "grpc", "rpc.service": RPC_SERVICE, "rpc.method": method}
            self._attributes[method] = attributes
        return attributes


def _caller_sampled(pairs: Metadata) -> bool | None:
    for key, value in pairs:
        if key == "traceparent":
            return parent_sampled(value) if isinstance(value, str) else None
    return None
