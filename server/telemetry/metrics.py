"""Prometheus metrics, registered on an injected registry (never the global one).

Base units (seconds), one family per meaning, bounded labels: model and version
come from the repository, code from our fixed status table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import Metric

from server.predictions.watches import WatchPlan
from server.runtime.identity import ModelIdentity
from server.statistics import VersionStatistics
from server.telemetry.prediction_metrics import PredictionFamilies
from server.telemetry.recorder import VersionRecorder

#: Request latency buckets: 100 µs .. 10 s, denser where online inference lives.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class BeforeCollect:
    """A collector with no samples that runs `callback` whenever the registry is collected.

    Registered before the metric families, it lets buffered samples reach them before a scrape reads them.
    """

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback = callback

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> list[Metric]:
        self._callback()
        return []


class ServerMetrics:
    """The server's metric families."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("model", "version")
        self.requests = Counter(
            "inference_requests",
            "Inference requests by outcome (gRPC status code name).",
            (*labels, "code"),
            registry=registry,
        )
        self.request_duration = Histogram(
            "inference_request_duration_seconds",
            "Time from request decoded to response ready, successful requests.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.queue_duration = Histogram(
            "inference_queue_duration_seconds",
            "Time a request waited before its model execution started.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.compute_duration = Histogram(
            "inference_compute_duration_seconds",
            "Time of one model execution, input preparation to output conversion.",
            labels,
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.native_handover = Histogram(
            "inference_native_batch_handover_seconds",
            "Time a batch the native frontend formed waited for the event loop to start it (a busy loop, or the "
            "GIL held by another thread, shows here).",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.native_requests = Counter(
            "inference_native_requests",
            "Inference requests the native frontend took in C++ (decoded, routed, batched and answered there); the "
            "rest of the server's requests took the Python path (docs/native-data-plane.md says which do).",
            ["model"],
            registry=registry,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Samples per model execution.",
            labels,
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.pending = Gauge(
            "inference_pending_requests",
            "Requests accepted for the model version and not yet answered (queued or executing).",
            labels,
            # Under --workers, /metrics sums live workers' values; ignored in a single process.
            multiprocess_mode="livesum",
            registry=registry,
        )
        self.unrouted = Counter(
            "inference_unrouted_requests",
            "Requests that failed before any model version took them (unknown model or version, no ready version, "
            "a request that does not decode), by gRPC status code. No model label: the name is the client's.",
            ("code",),
            registry=registry,
        )
        self.routed = Counter(
            "inference_routed_requests",
            "Requests sent to the model version, by how the router chose it: pinned (model_version given), "
            "weighted, sticky, shadow (a copy) or fallback (the chosen version was not ready).",
            (*labels, "route"),
            registry=registry,
        )
        self.routing_weight = Gauge(
            "inference_routing_weight",
            "Effective routing weight of the model version (0: reachable only when pinned).",
            labels,
            multiprocess_mode="livemostrecent",  # under --workers: the latest change any worker applied
            registry=registry,
        )
        self.sticky_key_invalid = Counter(
            "inference_sticky_key_invalid",
            "Requests whose sticky key value could not be used (type, empty, length); routed by weight instead.",
            ("model", "reason"),
            registry=registry,
        )
        self.model_info = Gauge(
            "inference_model_info",
            "1 for the artifact each loaded version serves (file sha256, ONNX producer and model_version, source "
            "commit and training data from the file's metadata_props when present), 0 once it no longer serves.",
            (*labels, "sha256", "producer", "onnx_model_version", "source_commit", "training_data"),
            multiprocess_mode="livemax",
            registry=registry,
        )
        self._info_labels: dict[tuple[str, int], tuple[str, ...]] = {}
        self.predictions = PredictionFamilies(registry)
        self.model_ready = Gauge(
            "inference_model_ready",
            "1 when the model version serves traffic, else 0.",
            labels,
            multiprocess_mode="livemax",  # ready in any live worker
            registry=registry,
        )

    def set_readiness(self, model: str, ready_by_version: Mapping[int, bool], weights: Mapping[int, int]) -> None:
        """Keep the readiness and routing-weight gauges in step with the repository's view of a model.

        `version=""` is the model as a whole (1 while any version is ready), so that a model whose config is
        invalid, and which therefore has no versions, still has a series an alert on `== 0` can see.
        """
        self.model_ready.labels(model, "").set(1 if any(ready_by_version.values()) else 0)
        for version, ready in ready_by_version.items():
            self.model_ready.labels(model, str(version)).set(1 if ready else 0)
            self.routing_weight.labels(model, str(version)).set(weights.get(version, 0) if ready else 0)

    def set_model_info(self, model: str, identities: Mapping[int, ModelIdentity]) -> None:
        """`identities` are the model's loaded versions now: their info series go to 1, replaced ones to 0."""
        for (name, version), labels in list(self._info_labels.items()):
            if name == model and version not in identities:
                self.model_info.labels(*labels).set(0)
                del self._info_labels[(name, version)]
        for version, identity in identities.items():
            labels = (
                model,
                str(version),
                identity.sha256,
                identity.producer,
                identity.onnx_model_version,
                identity.source_commit,
                identity.training_data,
            )
            previous = self._info_labels.get((model, version))
            if previous is not None and previous != labels:
                self.model_info.labels(*previous).set(0)
            self.model_info.labels(*labels).set(1)
            self._info_labels[(model, version)] = labels

    def request_unrouted(self, code: str) -> None:
        """A request failed before a version took it (rare: counted at once)."""
        self.unrouted.labels(code).inc()

    def sticky_key_rejected(self, model: str, reason: str) -> None:
        """Router observer: a sticky value that could not be used (rare, so counted at once)."""
        self.sticky_key_invalid.labels(model, reason).inc()

    def recorder(
        self, model: str, version: int, statistics: VersionStatistics, watches: WatchPlan | None = None
    ) -> VersionRecorder:
        """The request and execution accounting of one loaded version (its labelled children looked up once);
        `watches` are the outputs and inputs whose predictions it counts."""
        predictions = None
        if watches is not None and not watches.empty:
            predictions = self.predictions.recorder(model, version, watches)
        return VersionRecorder(self, model, version, statistics, predictions)
