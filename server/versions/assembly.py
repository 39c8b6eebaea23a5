"""Loads ONNX model versions off the event loop and wraps them as LoadedVersion with a started batcher."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.model_config import ModelConfig
from server.runtime.onnx_runner import OnnxRunner, load_onnx_model
from server.runtime.pool import InferencePool
from server.settings import RuntimeSettings
from server.statistics import VersionStatistics
from server.telemetry.recorder import VersionRecorder
from server.versions.loaded import LoadedVersion

RecorderFactory = Callable[[str, int, VersionStatistics], VersionRecorder]
"""(model, version, its statistics) -> the version's request and execution accounting."""


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
    """A VersionLoader: creates sessions on `load_executor`, runs them on `inference_pool`."""

    def __init__(
        self,
        defaults: RuntimeSettings,
        load_executor: Executor,
        inference_pool: InferencePool,
        recorder_factory: RecorderFactory,
    ) -> None:
        self._defaults = defaults
        self._load_executor = load_executor
        self._inference_pool = inference_pool
        self._recorder_factory = recorder_factory

    async def __call__(self, model_name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(self._load_executor, load_onnx_model, path, config, self._defaults)
        label = f"{model_name}:{version}"
        runner = OnnxRunner(model, self._inference_pool, label=label)
        statistics = VersionStatistics()
        recorder = self._recorder_factory(model_name, version, statistics)
        policy = batch_policy(config, model.signature.max_batch_size)
        batcher = DynamicBatcher(runner, policy, label, recorder.executed)
        await batcher.start()
        return LoadedVersion(
            model_name=model_name,
            version=version,
            signature=model.signature,
            config=config,
            runner=runner,
            batcher=batcher,
            providers=model.providers,
            recorder=recorder,
            identity=model.identity,
        )
