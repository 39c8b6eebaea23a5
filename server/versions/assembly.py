"""Loads ONNX model versions off the event loop and wraps them as LoadedVersion with a started batcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from pathlib import Path

from server.batching.batcher import BatchPolicy, DynamicBatcher, TracedBatchObserver
from server.confinement import RepositoryConfinement
from server.model_config import ModelConfig
from server.predictions.profile import ReferenceProfile
from server.predictions.watches import TensorShape, WatchPlan, plan_watches
from server.runtime.onnx_runner import OnnxRunner, load_onnx_model
from server.runtime.pool import InferencePool
from server.settings import RuntimeSettings
from server.statistics import VersionStatistics
from server.telemetry.recorder import VersionRecorder
from server.types import ModelSignature, TensorSpec
from server.versions.loaded import LoadedVersion
from server.versions.references import read_reference

log = logging.getLogger(__name__)

RecorderFactory = Callable[[str, int, VersionStatistics, WatchPlan], VersionRecorder]
"""(model, version, its statistics, what it watches) -> the version's request and execution accounting."""


def tensor_shape(spec: TensorSpec) -> TensorShape:
    return TensorShape(spec.name, spec.datatype, spec.shape[1:])


def watch_plan(
    signature: ModelSignature, config: ModelConfig, metadata: dict[str, str], profile: ReferenceProfile | None
) -> WatchPlan:
    """The outputs (and inputs) whose predictions are counted, from the signature, config and profile."""
    inputs = tuple(tensor_shape(spec) for spec in signature.inputs)
    outputs = tuple(tensor_shape(spec) for spec in signature.outputs)
    return plan_watches(inputs, outputs, config.telemetry, metadata, profile)


def batch_policy(config: ModelConfig, signature: ModelSignature) -> BatchPolicy:
    """The batcher's policy: the config's, except that a model whose outputs may not split never merges."""
    batching = config.batching
    return BatchPolicy(
        max_batch_size=signature.max_batch_size,
        merge=batching.enabled and not signature.unmergeable,
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
        traced_batches: TracedBatchObserver | None = None,
        *,
        confinement: RepositoryConfinement,
    ) -> None:
        """`traced_batches` records the executions that served traced requests (None: tracing off).
        `confinement`: where reference profiles may be read from (the repository checks the model file itself;
        the profile beside it may still be a symlink)."""
        self._defaults = defaults
        self._load_executor = load_executor
        self._inference_pool = inference_pool
        self._recorder_factory = recorder_factory
        self._traced_batches = traced_batches
        self._confinement = confinement

    async def __call__(self, model_name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(self._load_executor, load_onnx_model, path, config, self._defaults)
        label = f"{model_name}:{version}"
        reference = None
        if config.telemetry.enabled:
            version_dir = path.parent
            reference = await loop.run_in_executor(
                self._load_executor, read_reference, version_dir, label, self._confinement
            )
        runner = OnnxRunner(model, self._inference_pool, label=label)
        statistics = VersionStatistics()
        watches = watch_plan(model.signature, config, dict(model.identity.metadata), reference)
        recorder = self._recorder_factory(model_name, version, statistics, watches)
        policy = batch_policy(config, model.signature)
        if model.signature.unmergeable and config.batching.enabled:
            # Said at load, not at the first failure: merging would only break under load.
            log.warning(
                "requests to this model are never merged into one execution",
                extra={"model": label, "reason": model.signature.unmergeable},
            )
        batcher = DynamicBatcher(runner, policy, label, recorder.executed, self._traced_batches)
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
            reference=reference,
        )
