"""server.telemetry.recorder: buffered samples reach Prometheus exactly as direct observations would."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from server.runtime.runner import RunTimings
from server.statistics import VersionStatistics
from server.telemetry.metrics import LATENCY_BUCKETS, BeforeCollect, ServerMetrics
from server.telemetry.recorder import BufferedHistogram, VersionRecorder

VALUES = [0.0, 0.0001, 0.00010001, 0.003, 0.025, 7.0, 10.0, 11.0, math.inf, 0.0001]


def _exposition(registry: CollectorRegistry) -> list[str]:
    return [line for line in generate_latest(registry).decode().splitlines() if "_created" not in line]


def test_buffered_histogram_matches_direct_observations() -> None:
    direct, buffered = CollectorRegistry(), CollectorRegistry()
    plain = Histogram("h", "h", ["m"], buckets=LATENCY_BUCKETS, registry=direct).labels("a")
    buffer = BufferedHistogram(Histogram("h", "h", ["m"], buckets=LATENCY_BUCKETS, registry=buffered).labels("a"))
    for value in VALUES:
        plain.observe(value)
        buffer.observe(value)
    assert _exposition(buffered) != _exposition(direct)  # nothing reached Prometheus yet
    buffer.flush()
    assert _exposition(buffered) == _exposition(direct)
    buffer.flush()  # nothing new: flushing again changes nothing
    assert _exposition(buffered) == _exposition(direct)
    for value in VALUES[:3]:
        plain.observe(value)
        buffer.observe(value)
    buffer.flush()
    assert _exposition(buffered) == _exposition(direct)


def test_an_unknown_histogram_layout_is_refused_at_once() -> None:
    with pytest.raises(TypeError, match="unsupported prometheus_client histogram layout"):
        BufferedHistogram(object())


def _samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_version_recorder_counts_requests_and_executions_after_a_flush() -> None:
    registry = CollectorRegistry()
    statistics = VersionStatistics()
    recorder = ServerMetrics(registry).recorder("m", 3, statistics)
    timings = RunTimings(queue_ns=2_000_000, input_ns=10, infer_ns=1_000, output_ns=20)
    for _ in range(3):
        recorder.succeeded(2, 5_000_000, timings)
    recorder.failed("INVALID_ARGUMENT", 1_000)
    recorder.executed(6, timings, {}, {})
    labels = (("model", "m"), ("version", "3"))

    # ModelStatistics counts at once; Prometheus only after the flush (except failures, which are rare).
    assert (statistics.inference_count, statistics.execution_count, statistics.fail.count) == (6, 1, 1)
    before = _samples(registry)
    assert before.get(("inference_requests_total", (("code", "OK"), *labels)), 0) == 0
    assert before[("inference_requests_total", (("code", "INVALID_ARGUMENT"), *labels))] == 1

    recorder.flush(in_flight=4)
    after = _samples(registry)
    assert after[("inference_requests_total", (("code", "OK"), *labels))] == 3
    assert after[("inference_request_duration_seconds_count", labels)] == 3
    assert after[("inference_request_duration_seconds_sum", labels)] == pytest.approx(0.015)
    assert after[("inference_queue_duration_seconds_bucket", (("le", "0.0025"), *labels))] == 3
    assert after[("inference_batch_size_sum", labels)] == 6
    assert after[("inference_compute_duration_seconds_count", labels)] == 1
    assert after[("inference_pending_requests", labels)] == 4

    recorder.flush(in_flight=0)
    assert _samples(registry)[("inference_requests_total", (("code", "OK"), *labels))] == 3
    assert _samples(registry)[("inference_pending_requests", labels)] == 0


def test_a_batch_of_successes_counts_as_the_same_successes_one_by_one() -> None:
    # The native path records a batch's requests in one call; statistics and metrics must not tell the difference.
    timings = RunTimings(queue_ns=300, input_ns=10, infer_ns=1_000, output_ns=20)
    rows, durations, queued = [1, 3, 2], [900_000, 4_000_000, 70_000_000], [100_000, 2_500_000, 9_000]
    one_by_one, batched = CollectorRegistry(), CollectorRegistry()
    single_stats, batch_stats = VersionStatistics(), VersionStatistics()
    single = ServerMetrics(one_by_one).recorder("m", 1, single_stats)
    together = ServerMetrics(batched).recorder("m", 1, batch_stats)
    for size, duration, queue in zip(rows, durations, queued, strict=True):
        single.succeeded(size, duration, RunTimings(queue, timings.input_ns, timings.infer_ns, timings.output_ns))
    together.succeeded_many(sum(rows), durations, queued, timings)
    single.flush(in_flight=0)
    together.flush(in_flight=0)
    single_stats.last_inference_ms = batch_stats.last_inference_ms = 0
    assert single_stats == batch_stats
    assert _samples(one_by_one) == pytest.approx(_samples(batched))


def test_before_collect_runs_on_every_scrape_before_the_families_are_read() -> None:
    registry = CollectorRegistry()
    recorders: list[VersionRecorder] = []
    registry.register(BeforeCollect(lambda: [recorder.flush(in_flight=0) for recorder in recorders]))
    recorders.append(ServerMetrics(registry).recorder("m", 1, VersionStatistics()))
    recorders[0].succeeded(1, 1_000, RunTimings(0, 0, 0, 0))
    text = generate_latest(registry).decode()
    assert 'inference_requests_total{code="OK",model="m",version="1"} 1.0' in text
