"""server.tracing: request spans, their caller's context, and one linked span per traced batch (SDK in memory)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from server.tracing.batches import BatchTracer
from server.tracing.requests import RequestSpan, RequestTracer
from server.tracing.sampling import sampling_policy

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
REQUEST = "inference.GRPCInferenceService/ModelInfer"


class Tracers:
    def __init__(self, sampler: str) -> None:
        self.exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        tracer = provider.get_tracer("test")
        self.requests = RequestTracer(tracer, sampling_policy(sampler, None))
        self.batches = BatchTracer(tracer)
        self.provider = provider

    def spans(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.exporter.get_finished_spans() if span.name == name]


@pytest.fixture
def tracers() -> Iterator[Tracers]:
    made = Tracers("parentbased_always_on")
    yield made
    made.provider.shutdown()


def metadata(*pairs: tuple[str, str]) -> tuple[tuple[str, str], ...]:
    return (("user-agent", "grpc-python"), *pairs)


def test_a_request_span_continues_the_callers_trace(tracers: Tracers) -> None:
    trace = tracers.requests.start("ModelInfer", lambda: metadata(("traceparent", f"00-{TRACE}-{SPAN}-01")))
    assert trace is not None and trace.trace_id == TRACE
    trace.decoded("simple", "req-1")
    trace.routed("2")
    trace.succeeded()
    (span,) = tracers.spans("inference.GRPCInferenceService/ModelInfer")
    assert span.kind is SpanKind.SERVER
    assert span.parent is not None and f"{span.parent.span_id:016x}" == SPAN and span.parent.is_remote
    assert f"{span.context.trace_id:032x}" == TRACE
    assert dict(span.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.service": "inference.GRPCInferenceService",
        "rpc.method": "ModelInfer",
        "inference.model.name": "simple",
        "inference.request.id": "req-1",
        "inference.model.version": "2",
        "rpc.grpc.status_code": 0,
    }
    assert span.status.status_code is StatusCode.UNSET


def test_tracestate_travels_with_the_parent(tracers: Tracers) -> None:
    pairs = metadata(("traceparent", f"00-{TRACE}-{SPAN}-01"), ("tracestate", "vendor=abc"))
    trace = tracers.requests.start("ModelInfer", lambda: pairs)
    assert trace is not None
    trace.succeeded()
    (span,) = tracers.spans("inference.GRPCInferenceService/ModelInfer")
    assert span.context.trace_state.get("vendor") == "abc"


def test_an_unsampled_caller_gets_no_span_and_nothing_is_built(tracers: Tracers) -> None:
    assert tracers.requests.start("ModelInfer", lambda: metadata(("traceparent", f"00-{TRACE}-{SPAN}-00"))) is None
    assert tracers.exporter.get_finished_spans() == ()


def test_a_sampler_that_ignores_the_caller_never_reads_metadata_for_a_dropped_request() -> None:
    tracers = Tracers("always_off")

    def metadata_read() -> tuple[tuple[str, str], ...]:
        raise AssertionError("metadata read for a request that is not sampled")

    assert tracers.requests.start("ModelInfer", metadata_read) is None
    tracers.provider.shutdown()


def test_a_root_request_without_metadata_starts_a_new_trace(tracers: Tracers) -> None:
    trace = tracers.requests.start("ModelStreamInfer", lambda: None)
    assert trace is not None
    trace.succeeded()
    (span,) = tracers.spans("inference.GRPCInferenceService/ModelStreamInfer")
    assert span.parent is None and (span.attributes or {})["rpc.method"] == "ModelStreamInfer"


def test_a_failed_request_has_status_error_and_its_grpc_code(tracers: Tracers) -> None:
    trace = tracers.requests.start("ModelInfer", lambda: ())
    assert trace is not None
    trace.failed(3, "INVALID_ARGUMENT: unknown input 'x'")
    (span,) = tracers.spans("inference.GRPCInferenceService/ModelInfer")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "INVALID_ARGUMENT: unknown input 'x'"
    assert (span.attributes or {})["rpc.grpc.status_code"] == 3


def start_routed(tracers: Tracers, request_id: str) -> RequestSpan:
    trace = tracers.requests.start("ModelInfer", lambda: ())
    assert trace is not None
    trace.decoded("simple", request_id)
    trace.routed("1")
    return trace


def test_a_batch_is_one_span_linked_to_each_request_span(tracers: Tracers) -> None:
    first, second = start_routed(tracers, "a"), start_routed(tracers, "b")
    tracers.batches.executed([first, second], time.perf_counter_ns() - 2_000_000, rows=5, requests=3)
    first.succeeded()
    second.succeeded()

    (batch,) = tracers.spans("inference.batch")
    assert batch.parent is None  # its own trace: its requests belong to two others
    assert {link.context.span_id for link in batch.links} == {first.span_context.span_id, second.span_context.span_id}
    assert dict(batch.attributes or {}) == {
        "inference.model.name": "simple",
        "inference.model.version": "1",
        "inference.batch.size": 5,
        "inference.batch.requests": 3,
    }
    assert batch.end_time is not None and batch.start_time is not None
    assert 1_500_000 < batch.end_time - batch.start_time < 1_000_000_000

    for request_id in ("a", "b"):
        (span,) = [s for s in tracers.spans(REQUEST) if (s.attributes or {})["inference.request.id"] == request_id]
        events = {event.name: event.timestamp for event in span.events}
        assert list(events) == ["inference.queued", "inference.compute.start", "inference.compute.end"]
        assert events["inference.compute.start"] == batch.start_time
        assert events["inference.compute.end"] == batch.end_time
        assert [link.context.span_id for link in span.links] == [batch.context.span_id]  # and back to the batch


def test_a_batch_with_one_traced_request_is_recorded_on_its_span(tracers: Tracers) -> None:
    only = start_routed(tracers, "a")
    tracers.batches.executed([only, object()], time.perf_counter_ns() - 1_000_000, rows=4, requests=2)
    only.succeeded()
    assert tracers.spans("inference.batch") == []
    (span,) = tracers.spans(REQUEST)
    assert (span.attributes or {})["inference.batch.size"] == 4
    assert (span.attributes or {})["inference.batch.requests"] == 2
    assert [event.name for event in span.events][-2:] == ["inference.compute.start", "inference.compute.end"]
    assert list(span.links) == []


def test_a_batch_without_request_spans_records_nothing(tracers: Tracers) -> None:
    tracers.batches.executed([object()], 0, rows=1, requests=1)
    assert tracers.exporter.get_finished_spans() == ()
