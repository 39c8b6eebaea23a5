"""The native frontend's ModelInfer path, wired to the app: keeps the C++ table in step with the repository,
runs the batches C++ delivers, and takes part in the drain.

Per request nothing here runs: the table is republished when a model changes (a load, an unload, a routing change),
batches run once per batch (server/native/batches.py), and the drain asks C++ how many calls it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from server.batching.batcher import DynamicBatcher, TracedBatchObserver
from server.errors import status_name
from server.grpc.overload import CallLimits
from server.native.batches import NativeBatches
from server.native.fast_table import VersionKeys, fast_table
from server.native.shared_queue import SharedQueueBatcher, Tickets, dropped_error
from server.repository.manager import ModelRepository
from server.repository.records import ModelRecord
from server.telemetry.failures import log_failed_request
from server.tracing.sampling import RATIO_SPACE, SamplingPolicy
from server.versions.loaded import LoadedVersion


class NativeInferencePath:
    """The native frontend's ModelInfer path. With tracing or the access log on, C++ draws the requests they want
    (the same policy and share) and hands those to the Python path, marked drawn, which traces or logs them."""

    def __init__(
        self,
        repository: ModelRepository,
        limits: CallLimits,
        handover: Callable[[float], None] | None = None,
        taken: Callable[[str, int], None] | None = None,
        sampling: SamplingPolicy | None = None,
        traced: TracedBatchObserver | None = None,
        access_sample: float = 0.0,
    ) -> None:
        """`limits`: the Python path's CallLimits, which count in the native server's counters once attached, so
        that one pair of limits holds for both paths. `handover` observes each batch's wait for the event loop; `taken`
        counts the requests the native path took, per model and batch. With tracing on, `sampling` is its policy
        (C++ hands the requests it samples to the Python path, which traces them) and `traced` its batch tracer;
        `access_sample` is the access log's share (0: off), drawn the same way."""
        self._repository = repository
        self._limits = limits
        self._handover = handover
        self._taken = taken
        self._sampling = sampling
        self._traced = traced
        self._access_sample = access_sample
        self._keys = VersionKeys()
        self._tickets = Tickets()
        self._native: Any = None
        self._batches: NativeBatches | None = None
        repository.add_listener(self.on_model_change)

    def attach(self, native: Any) -> None:
        """The extension's NativeServer this path serves on; publishes the table."""
        self._native = native
        self._limits.share(native)
        self._batches = NativeBatches(native, self._keys, self._tickets, self._handover, self._taken, self._traced)
        self.publish()

    def on_batch(self, event: tuple[Any, ...]) -> None:
        assert self._batches is not None
        self._batches.run(event)

    def on_ticket(self, event: tuple[Any, ...]) -> None:
        """A Python-path request C++ dropped unrun: (6, ticket, outcome, waited_ns)."""
        self._tickets.dropped(event[1], event[2], event[3])

    def on_dropped(self, event: tuple[Any, ...]) -> None:
        """A native-path request C++ answered without running it: (7, version key, outcome, waited_ns, request id).
        Recorded as the Python path records its own: the failure in the statistics, and in the failure log."""
        _, key, outcome, waited_ns, request_id = event
        loaded = self._keys.version(key)
        if loaded is None:
            return
        error = dropped_error(outcome, loaded.label, waited_ns)
        code = "CANCELLED" if error is None else status_name(error)
        loaded.recorder.failed(code, waited_ns)
        if self._taken is not None:
            self._taken(loaded.model_name, 1)
        if error is not None:
            log_failed_request(loaded.model_name, loaded.version_text, code, request_id, None, error)

    def on_model_change(self, record: ModelRecord) -> None:
        self.publish()

    def publish(self) -> None:
        native = self._native
        if native is None:
            return
        versions, models = fast_table(self._repository.records(), self._keys)
        sampling = None if self._sampling is None else sampling_row(self._sampling)
        native.set_fast_table(versions, models, sampling, self._access_sample)
        published = {row[0] for row in versions}
        for key in self._keys.known():
            loaded = self._keys.version(key)
            if key in published and loaded is not None:
                self._serve_version(loaded, key)
            elif native.version_pending(key) == 0:
                self._keys.forget(key)  # gone from the table and nothing of it left in C++

    def _serve_version(self, loaded: LoadedVersion, key: int) -> None:
        """From now on the version's requests from both paths share its C++ queue."""
        native = self._native
        if loaded.native_in_flight is None:
            loaded.native_in_flight = lambda: int(native.version_pending(key))
        if not isinstance(loaded.batcher, SharedQueueBatcher):
            python_batcher = loaded.batcher
            assert isinstance(python_batcher, DynamicBatcher)
            loaded.batcher = SharedQueueBatcher(native, key, loaded.label, self._tickets, python_batcher)

    # ------------------------------------------------------------ the drain (server.grpc.draining.Drain)

    def stop_admitting(self) -> None:
        """Draining: new ModelInfer calls go to Python, which refuses them UNAVAILABLE."""
        if self._native is not None:
            self._native.set_admitting(False)

    def in_flight(self) -> int:
        return 0 if self._native is None else int(self._native.native_calls)

    async def stop(self) -> None:
        if self._batches is not None:
            await self._batches.stop()


def sampling_row(policy: SamplingPolicy) -> tuple[bool, bool, int]:
    """set_fast_table's sampling: (parent_based, always, root bound below 2**64)."""
    always = policy.root_bound >= RATIO_SPACE
    return policy.parent_based, always, RATIO_SPACE - 1 if always else policy.root_bound
