"""The transport-agnostic inference core: route, validate, queue for the batcher, account.

Every protocol edge (gRPC unary, gRPC stream) calls `InferenceCore.infer` with
plain objects and gets plain objects back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.errors import ServerError, status_name
from server.scheduling import deadline_of, priority_of
from server.telemetry.access import AccessLog
from server.telemetry.failures import log_failed_request
from server.traffic.router import Router
from server.traffic.shadow import ShadowRunner
from server.types import InferRequest, InferResponse

log = logging.getLogger(__name__)


class InferenceCore:
    """Runs inference requests against the versions the router picks."""

    def __init__(
        self,
        router: Router,
        shadows: ShadowRunner,
        unrouted: Callable[[str], None],
        access: AccessLog | None = None,
    ) -> None:
        """`unrouted` hears the status code of every request that fails before a version takes it;
        `access` logs a sample of the successful ones (None: no access log)."""
        self._router = router
        self._shadows = shadows
        self._unrouted = unrouted
        self._access = access

    async def infer(self, request: InferRequest) -> InferResponse:
        """Serve one request; raises a ServerError subclass for anything the caller must hear about."""
        try:
            loaded, shadow = self._router.select(request)
        except ServerError as error:
            code = status_name(error)
            self._unrouted(code)
            _log_failure(request, "", code, error)
            raise
        started = time.perf_counter_ns()
        trace = request.trace
        if trace is not None:
            trace.routed(loaded.version_text)
        # A copy for the shadow version starts now, so that it can share a batch with its peers.
        mirror = None if shadow is None else self._shadows.mirror(loaded, shadow, request)
        loaded.enter()
        try:
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
                trace=trace,
            )
        except BaseException as error:
            if mirror is not None:
                mirror.cancel()
            code = "CANCELLED" if not isinstance(error, Exception) else status_name(error)
            loaded.recorder.failed(code, time.perf_counter_ns() - started)
            if isinstance(error, ServerError):
                _log_failure(request, loaded.version_text, code, error)
            elif isinstance(error, Exception):
                log.exception("unexpected error during inference", extra={"model": loaded.label})
            raise
        finally:
            loaded.leave()
        if mirror is not None:
            mirror.set_result(result.outputs)
        duration = time.perf_counter_ns() - started
        trace_id = None if trace is None else trace.trace_id  # a traced request is the histogram's exemplar
        loaded.recorder.succeeded(admission.rows, duration, result.timings, trace_id)
        if self._access is not None:
            self._access.answered(
                loaded.model_name,
                loaded.version_text,
                request.request_id,
                duration,
                trace_id,
                request.metadata,
                request.drawn.decision(request.drawn.access),
            )
        return InferResponse(
            model_name=loaded.model_name,
            model_version=loaded.version_text,
            outputs=result.outputs,
            request_id=request.request_id,
        )


def _log_failure(request: InferRequest, version: str, code: str, error: BaseException) -> None:
    metadata = None if request.metadata is None else request.metadata()
    log_failed_request(request.model_name, version, code, request.request_id, metadata, error)
