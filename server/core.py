"""The transport-agnostic inference core: resolve, validate, queue for the batcher, account.

Every protocol edge (gRPC unary, gRPC stream) calls `InferenceCore.infer` with
plain objects and gets plain objects back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from server.errors import ServerError, status_name
from server.repository.loaded import LoadedVersion
from server.repository.manager import ModelRepository
from server.scheduling import deadline_of, priority_of
from server.telemetry.metrics import ServerMetrics
from server.types import InferRequest, InferResponse

log = logging.getLogger(__name__)

_NS = 1e-9


@dataclass(frozen=True, slots=True)
class _VersionMetrics:
    """Labelled metric children of one version, looked up once instead of on every request."""

    ok: Any
    duration: Any
    queue: Any
    pending: Any


class InferenceCore:
    """Runs inference requests against the repository's loaded versions."""

    def __init__(self, repository: ModelRepository, metrics: ServerMetrics) -> None:
        self._repository = repository
        self._metrics = metrics
        self._children: dict[tuple[str, int], _VersionMetrics] = {}

    def _children_of(self, loaded: LoadedVersion) -> _VersionMetrics:
        key = (loaded.model_name, loaded.version)
        children = self._children.get(key)
        if children is None:
            labels = (loaded.model_name, str(loaded.version))
            metrics = self._metrics
            children = self._children[key] = _VersionMetrics(
                ok=metrics.requests.labels(*labels, "OK"),
                duration=metrics.request_duration.labels(*labels),
                queue=metrics.queue_duration.labels(*labels),
                pending=metrics.pending.labels(*labels),
            )
        return children

    async def infer(self, request: InferRequest) -> InferResponse:
        """Serve one request; raises a ServerError subclass for anything the caller must hear about."""
        loaded = self._repository.resolve(request.model_name, request.model_version)
        children = self._children_of(loaded)
        started = time.perf_counter_ns()
        children.pending.inc()
        loaded.enter()
        try:
            return await self._run(loaded, request, children, started)
        except BaseException as error:
            self._record_failure(loaded, error, time.perf_counter_ns() - started)
            raise
        finally:
            loaded.leave()
            children.pending.dec()

    async def _run(
        self, loaded: LoadedVersion, request: InferRequest, children: _VersionMetrics, started: int
    ) -> InferResponse:
        admission = loaded.validator.admit(request)
        batching = loaded.config.batching
        if request.parameters or batching.default_timeout_us:
            deadline, enforce = deadline_of(request, batching)
            priority = priority_of(request, batching, loaded.label)
        else:  # nothing to resolve: the transport's deadline (if any) and the default level
            deadline, enforce, priority = request.deadline, False, batching.default_priority_level
        result = await loaded.batcher.submit(
            request.inputs,
            admission.output_names,
            admission.rows,
            priority=priority,
            deadline=deadline,
            enforce_deadline=enforce,
            key=admission.merge_key,
        )
        duration_ns = time.perf_counter_ns() - started
        loaded.statistics.record_success(admission.rows, duration_ns, result.timings)
        children.ok.inc()
        children.duration.observe(duration_ns * _NS)
        children.queue.observe(result.timings.queue_ns * _NS)
        return InferResponse(
            model_name=loaded.model_name,
            model_version=str(loaded.version),
            outputs=result.outputs,
            request_id=request.request_id,
        )

    def _record_failure(self, loaded: LoadedVersion, error: BaseException, duration_ns: int) -> None:
        loaded.statistics.record_failure(duration_ns)
        code = "CANCELLED" if not isinstance(error, Exception) else status_name(error)
        self._metrics.requests.labels(loaded.model_name, str(loaded.version), code).inc()
        if isinstance(error, Exception) and not isinstance(error, ServerError):
            log.exception("unexpected error during inference", extra={"model": loaded.label})
