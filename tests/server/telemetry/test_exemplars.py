"""Traced requests become the request-duration histogram's exemplars, in the OpenMetrics exposition only."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from server.runtime.runner import RunTimings
from server.statistics import VersionStatistics
from server.telemetry.metrics import LATENCY_BUCKETS, ServerMetrics
from server.telemetry.recorder import BufferedHistogram

SLOW, FAST, LATER = "a" * 32, "b" * 32, "c" * 32


def exemplar_lines(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_openmetrics(registry).decode().splitlines() if " # {" in line]


def test_each_bucket_keeps_its_latest_traced_observation_until_the_flush() -> None:
    registry = CollectorRegistry()
    histogram = BufferedHistogram(Histogram("h", "h", buckets=LATENCY_BUCKETS, registry=registry))
    histogram.observe_traced(0.3, SLOW)
    histogram.observe_traced(0.0004, FAST)
    histogram.observe(0.0004)
    assert exemplar_lines(registry) == []  # nothing reaches Prometheus before a flush
    histogram.flush()
    histogram.observe_traced(0.0003, LATER)  # replaces the fast bucket's exemplar at the next flush
    histogram.flush()

    lines = exemplar_lines(registry)
    assert len(lines) == 2
    assert lines[0].startswith('h_bucket{le="0.0005"} 3.0 # {trace_id="' + LATER + '"} 0.0003 ')
    assert lines[1].startswith('h_bucket{le="0.5"} 4.0 # {trace_id="' + SLOW + '"} 0.3 ')
    assert "trace_id" not in generate_latest(registry).decode()  # the Prometheus text format has no exemplars


def test_a_request_succeeding_with_a_trace_id_is_the_duration_exemplar() -> None:
    registry = CollectorRegistry()
    recorder = ServerMetrics(registry).recorder("m", 1, VersionStatistics())
    timings = RunTimings(queue_ns=1_000, input_ns=1, infer_ns=1, output_ns=1)
    recorder.succeeded(1, 2_000_000, timings)
    recorder.succeeded(1, 3_000_000, timings, SLOW)
    recorder.flush(in_flight=0)
    (line,) = exemplar_lines(registry)
    assert line.startswith(
        'inference_request_duration_seconds_bucket{le="0.005",model="m",version="1"} 2.0 # {trace_id="' + SLOW + '"}'
    )
