"""Shadow traffic: a copy of a routed request runs on the shadow version, off the request path.

The copy shares the primary's decoded tensors (read-only), goes through the shadow version's own
validator and batcher at its lowest priority, and is compared with the primary's outputs once
both are known. Its result never reaches the client and its failure never fails the request.
When the shadow is saturated (its queue full, or `max_in_flight` copies pending) the copy is
dropped and counted: shadowing never queues work the primary would wait behind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from server.errors import ResourceExhaustedError, ServerError, status_name
from server.routing.diff import compare
from server.routing.table import Route
from server.telemetry.shadow_metrics import ShadowMetrics
from server.types import InferRequest
from server.versions.loaded import LoadedVersion

log = logging.getLogger(__name__)

Outputs = Mapping[str, npt.NDArray[Any]]


class ShadowRunner:
    """Starts shadow copies and settles them; `await stop()` cancels the copies still pending."""

    def __init__(self, metrics: ShadowMetrics, max_in_flight: int = 256) -> None:
        self._metrics = metrics
        self._max_in_flight = max_in_flight
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def mirror(
        self, primary: LoadedVersion, shadow: LoadedVersion, request: InferRequest
    ) -> asyncio.Future[Outputs] | None:
        """Start a copy of `request` on `shadow`; None when the copy was dropped.

        The caller, and only the caller, settles the returned future: the primary's outputs, or
        cancelled when the primary failed. The copy never touches it, so it cannot fail the primary.
        """
        labels = (primary.model_name, primary.version_text, shadow.version_text)
        if len(self._tasks) >= self._max_in_flight:
            self._metrics.dropped(*labels)
            return None
        outcome: asyncio.Future[Outputs] = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._shadow(shadow, request, outcome, labels))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return outcome

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _shadow(
        self,
        shadow: LoadedVersion,
        request: InferRequest,
        primary: asyncio.Future[Outputs],
        labels: tuple[str, str, str],
    ) -> None:
        started = time.perf_counter_ns()
        shadow.enter()
        try:
            shadow.recorder.routed(Route.SHADOW)
            admission = shadow.validator.admit(request)
            levels = shadow.config.batching.priority_levels
            result = await shadow.batcher.submit(
                request.inputs, admission.output_names, admission.rows, priority=levels, key=admission.merge_key
            )
        except ResourceExhaustedError:
            self._metrics.dropped(*labels)
            return
        except Exception as error:
            if not isinstance(error, ServerError):
                log.exception("shadow request failed unexpectedly", extra={"model": shadow.label})
            self._metrics.failed(*labels, status_name(error))
            return
        finally:
            shadow.leave()
        self._metrics.latency(*labels, (time.perf_counter_ns() - started) / 1e9)
        if not primary.done():
            await asyncio.wait((primary,))  # returns when the primary settles, cancelled or not
        if primary.cancelled():
            return  # the primary failed: nothing to compare with
        settings = shadow.config.routing.shadow  # one config.toml per model: the primary's too
        tolerance = 0.0 if settings is None else settings.tolerance
        self._metrics.compared(*labels, compare(primary.result(), result.outputs, tolerance))
