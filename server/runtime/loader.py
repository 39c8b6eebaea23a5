"""Loads ONNX model versions off the event loop and wraps them as LoadedVersion."""

from __future__ import annotations

import asyncio
from concurrent.futures import Executor
from pathlib import Path

from server.repository.config import ModelConfig
from server.repository.loaded import LoadedVersion
from server.runtime.onnx_runner import OnnxRunner, load_onnx_model
from server.settings import RuntimeSettings


class OnnxVersionLoader:
    """A VersionLoader: creates sessions on `load_executor`, runs them on `infer_executor`."""

    def __init__(self, defaults: RuntimeSettings, load_executor: Executor, infer_executor: Executor) -> None:
        self._defaults = defaults
        self._load_executor = load_executor
        self._infer_executor = infer_executor

    async def __call__(self, model_name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        loop = asyncio.get_running_loop()
        model = await loop.run_in_executor(self._load_executor, load_onnx_model, path, config, self._defaults)
        runner = OnnxRunner(model, self._infer_executor, label=f"{model_name}:{version}")
        return LoadedVersion(
            model_name=model_name,
            version=version,
            signature=model.signature,
            config=config,
            runner=runner,
            providers=model.providers,
        )
