"""A loaded, servable model version and the bookkeeping that lets it drain before unload."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from server.admission import RequestValidator
from server.batching.batcher import Batcher
from server.model_config import ModelConfig
from server.predictions.profile import ReferenceProfile
from server.runtime.identity import ModelIdentity
from server.runtime.runner import Runner
from server.statistics import VersionStatistics
from server.telemetry.recorder import VersionRecorder
from server.types import ModelSignature


@dataclass(eq=False, slots=True)
class LoadedVersion:
    """One version in memory. `close()` runs only after in-flight requests finish."""

    model_name: str
    version: int
    signature: ModelSignature
    config: ModelConfig
    runner: Runner
    batcher: Batcher
    providers: tuple[str, ...]
    recorder: VersionRecorder
    """Request and execution accounting: ModelStatistics counters and Prometheus samples."""
    identity: ModelIdentity = field(default_factory=lambda: ModelIdentity(sha256=""))
    """Which file this is: its sha256 and the ONNX producer and metadata."""
    reference: ReferenceProfile | None = None
    """What this version predicted on its reference data (`reference.json` beside the model), for drift."""
    label: str = field(init=False)
    """"model:version", as messages and logs name it."""
    version_text: str = field(init=False)
    """The version number as responses carry it."""
    validator: RequestValidator = field(init=False)
    native_in_flight: Callable[[], int] | None = None
    """This version's requests on the native frontend's ModelInfer path (queued or running there), when it has one."""
    _in_flight: int = 0
    _idle: asyncio.Event | None = None

    @property
    def statistics(self) -> VersionStatistics:
        return self.recorder.statistics

    @property
    def in_flight(self) -> int:
        """Requests accepted for this version and not yet answered."""
        native = 0 if self.native_in_flight is None else self.native_in_flight()
        return self._in_flight + native

    def __post_init__(self) -> None:
        self.label = f"{self.model_name}:{self.version}"
        self.version_text = str(self.version)
        self.validator = RequestValidator(self.signature, self.label)

    def enter(self) -> None:
        """Count a request as in flight; pair every call with `leave()` (a try/finally on the hot path)."""
        self._in_flight += 1

    def leave(self) -> None:
        self._in_flight -= 1
        if self._in_flight == 0 and self._idle is not None:
            self._idle.set()

    @contextmanager
    def serving(self) -> Iterator[None]:
        """Count a request as in flight for the duration of the block."""
        self.enter()
        try:
            yield
        finally:
            self.leave()

    async def drain(self, timeout_s: float) -> bool:
        """Wait until no request uses this version; False if `timeout_s` passed first."""
        deadline = time.monotonic() + timeout_s
        if self._in_flight > 0:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), timeout_s)
            except TimeoutError:
                return False
        # The native path's requests are counted in C++: polled, briefly (it stopped routing here already).
        while self.native_in_flight is not None and self.native_in_flight() > 0:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)
        return True

    async def close(self) -> None:
        """Stop the batcher, then release the runtime."""
        await self.batcher.stop()
        self.runner.close()
        self.recorder.flush(in_flight=0)
