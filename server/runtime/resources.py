"""The compute side of one server process: inference threads, load threads and the heap trimmer."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from server.runtime.heap import GlibcHeap, HeapTrimmer
from server.runtime.pool import InferencePool
from server.runtime.priority import lower_this_thread
from server.settings import RuntimeSettings


@dataclass(frozen=True)
class ComputeResources:
    inference: InferencePool
    loading: ThreadPoolExecutor
    heap_trimmer: HeapTrimmer | None

    @classmethod
    def from_settings(cls, runtime: RuntimeSettings) -> ComputeResources:
        # Compute runs a few nice steps below the event loop, which every model's calls go through
        # (server.runtime.priority); ONNX Runtime's threads inherit it from the load threads.
        nice = runtime.compute_nice
        loading = ThreadPoolExecutor(
            runtime.load_threads, thread_name_prefix="load", initializer=lower_this_thread, initargs=(nice,)
        )
        # Gives memory freed after large requests back to the operating system (server.runtime.heap).
        trim_above = runtime.heap_trim_mib << 20
        return cls(
            inference=InferencePool(runtime.inference_threads, nice=nice),
            loading=loading,
            heap_trimmer=HeapTrimmer(GlibcHeap(), trim_above) if trim_above > 0 else None,
        )

    def start(self) -> None:
        """Start the heap trimmer (the pools start their threads on first use)."""
        if self.heap_trimmer is not None:
            self.heap_trimmer.start()

    async def close(self) -> None:
        """Finish queued work and stop every thread (once nothing submits any more)."""
        self.inference.shutdown()
        self.loading.shutdown(wait=True, cancel_futures=True)
        if self.heap_trimmer is not None:
            await asyncio.to_thread(self.heap_trimmer.stop)
