"""Cumulative per-version inference statistics, as ModelStatistics reports them.

Updated only from the event loop, so no locking is needed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.runtime.runner import RunTimings


@dataclass(slots=True)
class Duration:
    count: int = 0
    ns: int = 0

    def add(self, ns: int, count: int = 1) -> None:
        self.count += count
        self.ns += ns


@dataclass(slots=True)
class BatchStats:
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass(slots=True)
class VersionStatistics:
    """Counters for one loaded model version."""

    inference_count: int = 0
    execution_count: int = 0
    last_inference_ms: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, BatchStats] = field(default_factory=dict)

    def record_execution(self, batch_size: int, timings: RunTimings) -> None:
        """One runtime execution serving `batch_size` samples."""
        self.execution_count += 1
        stats = self.batches.get(batch_size)
        if stats is None:
            stats = self.batches[batch_size] = BatchStats()
        stats.compute_input.add(timings.input_ns)
        stats.compute_infer.add(timings.infer_ns)
        stats.compute_output.add(timings.output_ns)

    def record_success(self, batch_size: int, duration_ns: int, timings: RunTimings) -> None:
        """One request finished; its share of queue and compute time is counted per request."""
        self.inference_count += batch_size
        self.last_inference_ms = time.time_ns() // 1_000_000  # an epoch timestamp, not a duration
        self.success.add(duration_ns)
        self.queue.add(timings.queue_ns)
        self.compute_input.add(timings.input_ns)
        self.compute_infer.add(timings.infer_ns)
        self.compute_output.add(timings.output_ns)

    def record_successes(
        self, rows: int, durations_ns: Sequence[int], queue_ns: Sequence[int], timings: RunTimings
    ) -> None:
        """record_success for each request of one execution at once (`rows` in all; the compute shares of
        `timings` are the same for each): the same totals, one call per batch."""
        count = len(durations_ns)
        self.inference_count += rows
        self.last_inference_ms = time.time_ns() // 1_000_000
        self.success.add(sum(durations_ns), count)
        self.queue.add(sum(queue_ns), count)
        self.compute_input.add(timings.input_ns * count, count)
        self.compute_infer.add(timings.infer_ns * count, count)
        self.compute_output.add(timings.output_ns * count, count)

    def record_failure(self, duration_ns: int) -> None:
        self.fail.add(duration_ns)
