"""Loads ONNX model versions off the event loop and wraps them as LoadedVersion with a started batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from server.batching.batcher import BatchPolicy, DynamicBatcher, ExecutionObserver
from server.repository.config import ModelConfig
from server.repository.loaded import LoadedVersion
from server.runtime.onnx_runner import OnnxRunner, load_onnx_model
from server.settings import RuntimeSettings
from server.statistics import VersionStatistics

ObserverFactory = Callable[[str, int, VersionStatistics], ExecutionObserver]
"""(model, version, its statistics) -> what to call after every execution."""


def batch_policy(config: ModelConfig, max_batch_size: int) -> BatchPolicy:
    batching = config.batching
    return BatchPolicy(
        max_batch_size=max_batch_size,
        merge=batching.enabled,
        max_queue_delay_us=batching.max_queue_delay_us,
        preferred_batch_sizes=batching.preferred_batch_sizes,
        max_queue_size=batching.max_queue_size,
        instances=config.instances.count,
        priority_levels=batching.priority_levels,
    )


class OnnxVersionLoader:
    """A VersionLoader: creates sessions on `load_executor`, runs them on `infer_executor`."""

    def __init__(
        self,
        defaults: RuntimeSettings,
        load_executor: Executor,
        infer_executor: Executor,
        observer_factory: ObserverFactory,
    ) -> None:
        self._defaults = defaults
        self._load_executor = load_executor
        self._infer_executor = infer_executor
        self._observer_factory = observer_factory

    async def __call__(self, model_name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(self._load_executor, load_onnx_model, path, config, self._defaults)
        label = f"{model_name}:{version}"
        runner = OnnxRunner(model, self._infer_executor, label=label)
        statistics = VersionStatistics()
        observe = self._observer_factory(model_name, version, statistics)
        batcher = DynamicBatcher(runner, batch_policy(config, model.signature.max_batch_size), label, observe)
        await batcher.start()
        return LoadedVersion(
            model_name=model_name,
            version=version,
            signature=model.signature,
            config=config,
            runner=runner,
            batcher=batcher,
            providers=model.providers,
            statistics=statistics,
        )
