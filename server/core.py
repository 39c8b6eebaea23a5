"""The transport-agnostic inference core: resolve, validate, run, account.

Every protocol edge (gRPC unary, gRPC stream) calls `InferenceCore.infer` with
plain objects and gets plain objects back.
"""

from __future__ import annotations

import logging
import time

from server.errors import ServerError, status_name
from server.repository.loaded import LoadedVersion
from server.repository.manager import ModelRepository
from server.telemetry.metrics import ServerMetrics
from server.types import InferRequest, InferResponse, batch_size_of
from server.validation import validate_request

log = logging.getLogger(__name__)

_NS = 1e-9


class InferenceCore:
    """Runs inference requests against the repository's loaded versions."""

    def __init__(self, repository: ModelRepository, metrics: ServerMetrics) -> None:
        self._repository = repository
        self._metrics = metrics

    async def infer(self, request: InferRequest) -> InferResponse:
        """Serve one request; raises a ServerError subclass for anything the caller must hear about."""
        loaded = self._repository.resolve(request.model_name, request.model_version)
        started = time.perf_counter_ns()
        pending = self._metrics.pending.labels(loaded.model_name, str(loaded.version))
        pending.inc()
        with loaded.serving():
            try:
                return await self._run(loaded, request)
            except Exception as error:
                self._record_failure(loaded, error, time.perf_counter_ns() - started)
                raise
            finally:
                pending.dec()

    async def _run(self, loaded: LoadedVersion, request: InferRequest) -> InferResponse:
        started = time.perf_counter_ns()
        output_names = validate_request(request, loaded.signature, loaded.label)
        result = await loaded.runner.run(request.inputs, output_names)
        duration_ns = time.perf_counter_ns() - started
        batch = batch_size_of(request.inputs) if loaded.signature.max_batch_size > 0 else 1
        stats = loaded.statistics
        stats.record_execution(batch, result.timings)
        stats.record_success(batch, duration_ns, result.timings)
        labels = (loaded.model_name, str(loaded.version))
        timings = result.timings
        self._metrics.requests.labels(*labels, "OK").inc()
        self._metrics.request_duration.labels(*labels).observe(duration_ns * _NS)
        self._metrics.queue_duration.labels(*labels).observe(timings.queue_ns * _NS)
        compute_ns = timings.input_ns + timings.infer_ns + timings.output_ns
        self._metrics.compute_duration.labels(*labels).observe(compute_ns * _NS)
        self._metrics.batch_size.labels(*labels).observe(batch)
        return InferResponse(
            model_name=loaded.model_name,
            model_version=str(loaded.version),
            outputs=result.outputs,
            request_id=request.request_id,
        )

    def _record_failure(self, loaded: LoadedVersion, error: Exception, duration_ns: int) -> None:
        loaded.statistics.record_failure(duration_ns)
        code = status_name(error)
        self._metrics.requests.labels(loaded.model_name, str(loaded.version), code).inc()
        if not isinstance(error, ServerError):
            log.exception("unexpected error during inference", extra={"model": loaded.label})
