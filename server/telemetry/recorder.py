"""Per-version request accounting cheap enough for the hot path: plain numbers now, Prometheus on flush.

A prometheus_client call takes a lock and several Python calls; the five a request used to make cost
about 37,000 CPU instructions, a fifth of the server's own work per request (callgrind). Here a
request costs one method call that adds to integers, and `flush()` moves the totals into the labelled
Prometheus children. The server flushes before every scrape and every 0.1 s (for the
multi-process aggregation, which reads the children's files). Everything runs on the event loop,
so nothing here is locked.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy.typing as npt
from prometheus_client.samples import Exemplar

from server.routing.table import Route
from server.runtime.runner import RunTimings
from server.statistics import VersionStatistics

if TYPE_CHECKING:
    from server.telemetry.metrics import ServerMetrics
    from server.telemetry.prediction_metrics import PredictionRecorder

_NS = 1e-9


class BufferedHistogram:
    """Observations counted per bucket in plain integers until `flush()` adds them to a Prometheus histogram."""

    __slots__ = ("_bounds", "_child", "_counts", "_exemplars", "_sum")

    def __init__(self, child: Any) -> None:
        # prometheus_client keeps a histogram child's buckets in `_upper_bounds` / `_buckets` / `_sum`.
        # It has no public way to add several observations at once, so check the layout here, once:
        # a library change fails loudly at start-up (and in the tests), never silently at scrape time.
        bounds = getattr(child, "_upper_bounds", None)
        buckets = getattr(child, "_buckets", ())
        if not bounds or bounds[-1] != math.inf or len(buckets) != len(bounds) or not hasattr(child, "_sum"):
            raise TypeError(f"unsupported prometheus_client histogram layout: {type(child).__name__}")
        self._child = child
        self._bounds = tuple(bounds[:-1])
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._exemplars: dict[int, Exemplar] = {}

    def observe(self, value: float) -> None:
        # Prometheus buckets are "less than or equal": the first bound >= value.
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def observe_many(self, values: Iterable[float]) -> None:
        """observe() for each of `values` (one call per batch on the native path)."""
        counts, bounds, total = self._counts, self._bounds, 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self._sum += total

    def observe_traced(self, value: float, trace_id: str) -> None:
        """An observation of a traced request: its bucket's exemplar until a later traced one replaces it.

        Kept per bucket, so a slow request's trace is not overwritten by the fast majority's before a scrape.
        """
        index = bisect_left(self._bounds, value)
        self._counts[index] += 1
        self._sum += value
        self._exemplars[index] = Exemplar({"trace_id": trace_id}, value, time.time())

    def flush(self) -> None:
        counts = self._counts
        if not any(counts):
            return
        for index, count in enumerate(counts):
            if count:
                self._child._buckets[index].inc(count)
                counts[index] = 0
        self._child._sum.inc(self._sum)
        self._sum = 0.0
        if self._exemplars:
            # As Histogram.observe(exemplar=) stores one; under multiprocess mode (--workers) a no-op.
            for index, exemplar in self._exemplars.items():
                self._child._buckets[index].set_exemplar(exemplar)
            self._exemplars.clear()


class VersionRecorder:
    """ModelStatistics counters and Prometheus samples of one loaded model version."""

    def __init__(
        self,
        families: ServerMetrics,
        model: str,
        version: int,
        statistics: VersionStatistics,
        predictions: PredictionRecorder | None = None,
    ) -> None:
        """`families` are the metric families whose labelled children this version's samples go to;
        `predictions` counts the watched outputs of every execution (None: nothing watched)."""
        labels = (model, str(version))
        self.statistics = statistics
        self._families = families
        self._labels = labels
        self._ok = families.requests.labels(*labels, "OK")
        self._ok_count = 0
        self._pending = families.pending.labels(*labels)
        self._duration = BufferedHistogram(families.request_duration.labels(*labels))
        self._queue = BufferedHistogram(families.queue_duration.labels(*labels))
        self._compute = BufferedHistogram(families.compute_duration.labels(*labels))
        self._batch_size = BufferedHistogram(families.batch_size.labels(*labels))
        self._routed_children = [families.routed.labels(*labels, route.label) for route in Route]
        self._routed = [0] * len(Route)
        self.predictions = predictions
        # Bound once: an execution then costs one call that appends to lists (see predictions.tally).
        self._observe_predictions = None if predictions is None else predictions.tally.observe
        self._watch_inputs = predictions is not None and predictions.watch_inputs

    def routed(self, route: Route) -> None:
        """One request sent to this version, and how the router chose it (a list index: hot path)."""
        self._routed[route] += 1

    def succeeded(self, rows: int, duration_ns: int, timings: RunTimings, trace_id: str | None = None) -> None:
        """One request answered: `duration_ns` in the server, `timings` of its share of an execution.

        `trace_id` (32 hex digits) when the request was traced: the duration's exemplar."""
        self.statistics.record_success(rows, duration_ns, timings)
        self._ok_count += 1
        if trace_id is None:
            self._duration.observe(duration_ns * _NS)
        else:
            self._duration.observe_traced(duration_ns * _NS, trace_id)
        self._queue.observe(timings.queue_ns * _NS)

    def succeeded_many(
        self, rows: int, durations_ns: Sequence[int], queue_ns: Sequence[int], timings: RunTimings
    ) -> None:
        """`succeeded` for every request of one execution (untraced; `rows` in all, each request's queue time in
        `queue_ns`, the compute shares of `timings` the same for all): one call per batch on the native path."""
        self.statistics.record_successes(rows, durations_ns, queue_ns, timings)
        self._ok_count += len(durations_ns)
        self._duration.observe_many([duration * _NS for duration in durations_ns])
        self._queue.observe_many([queued * _NS for queued in queue_ns])

    def failed(self, code: str, duration_ns: int) -> None:
        """One request failed with the gRPC status `code` (rare: counted in Prometheus at once)."""
        self.statistics.record_failure(duration_ns)
        self._families.requests.labels(*self._labels, code).inc()

    def executed(
        self,
        rows: int,
        timings: RunTimings,
        outputs: Mapping[str, npt.NDArray[Any]],
        inputs: Mapping[str, npt.NDArray[Any]],
    ) -> None:
        """One runtime execution of `rows` samples: the batcher's execution observer."""
        self.statistics.record_execution(rows, timings)
        if self._observe_predictions is not None:
            self._observe_predictions(outputs, inputs if self._watch_inputs else None)
        self._batch_size.observe(rows)
        self._compute.observe((timings.input_ns + timings.infer_ns + timings.output_ns) * _NS)

    def flush(self, in_flight: int, predictions: bool = True) -> None:
        """Move what accumulated into Prometheus; `in_flight` is the version's pending-request count now.
        `predictions=False` leaves the prediction counts buffered (they cost more to count; see App)."""
        if self._ok_count:
            self._ok.inc(self._ok_count)
            self._ok_count = 0
        self._duration.flush()
        self._queue.flush()
        self._compute.flush()
        self._batch_size.flush()
        if predictions and self.predictions is not None:
            self.predictions.flush()
        self._pending.set(in_flight)
        routed = self._routed
        for route, count in enumerate(routed):
            if count:
                self._routed_children[route].inc(count)
                routed[route] = 0
