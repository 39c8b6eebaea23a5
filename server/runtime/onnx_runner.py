"""ONNX Runtime sessions behind the Runner interface."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from server.errors import InferenceFailedError, InvalidInputError, ModelLoadError
from server.model_config import ModelConfig
from server.runtime.identity import ModelIdentity, identify
from server.runtime.onnx_signature import signature_from_session
from server.runtime.pool import InferencePool
from server.runtime.providers import choose_providers
from server.runtime.runner import RunResult, RunTimings
from server.runtime.sessions import SessionPool
from server.settings import RuntimeSettings
from server.types import ModelSignature

log = logging.getLogger(__name__)

_OPTIMIZATION = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


@dataclass(frozen=True, slots=True)
class LoadedOnnxModel:
    """What loading produced: the sessions (one per instance) and the signature."""

    sessions: tuple[Any, ...]
    signature: ModelSignature
    providers: tuple[str, ...]
    identity: ModelIdentity


def _session_options(config: ModelConfig, defaults: RuntimeSettings) -> Any:
    options = ort.SessionOptions()
    intra = config.runtime.intra_op_threads
    inter = config.runtime.inter_op_threads
    options.intra_op_num_threads = defaults.intra_op_threads if intra is None else intra
    options.inter_op_num_threads = defaults.inter_op_threads if inter is None else inter
    options.graph_optimization_level = _OPTIMIZATION[config.runtime.graph_optimization]
    # ONNX Runtime's CPU arena keeps the largest batch's tensors for good: one 90 MiB request left a session
    # holding 90 MiB more for the rest of its life. Off, freed tensors go back to malloc and, via the heap
    # trimmer, to the operating system; fraud's instructions per request did not change (647,593 vs 650,985).
    arena = config.runtime.memory_arena
    options.enable_cpu_mem_arena = defaults.memory_arena if arena is None else arena
    options.log_severity_level = 3  # errors only: provider fallbacks are logged by us
    return options


@functools.cache
def _load_cuda_libraries() -> None:
    """Load CUDA and cuDNN from the nvidia-* wheels, when onnxruntime-gpu was installed with its [cuda,cudnn]
    extras (the GPU image) rather than beside a system CUDA. Once per process; harmless where they are absent."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return
    try:
        preload()
    except Exception as error:  # a system CUDA install may still serve; the session will say if not
        log.debug("onnxruntime.preload_dlls failed", extra={"error": str(error)})


def load_onnx_model(path: Path, config: ModelConfig, defaults: RuntimeSettings) -> LoadedOnnxModel:
    """Create the sessions for one version. Blocking: call it from a worker thread."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} does not exist")
    requested = config.runtime.providers if config.runtime.providers is not None else defaults.providers
    available = ort.get_available_providers()
    providers = choose_providers(requested, available)
    if "CUDAExecutionProvider" in providers:
        _load_cuda_libraries()
    options = _session_options(config, defaults)
    sessions = []
    try:
        for _ in range(config.instances.count):
            sessions.append(ort.InferenceSession(str(path), sess_options=options, providers=providers))
    except Exception as exc:  # onnxruntime raises several unrelated types for bad files
        raise ModelLoadError(f"onnxruntime could not load {path}: {exc}") from None
    signature = signature_from_session(sessions[0], config.max_batch_size)
    return LoadedOnnxModel(
        sessions=tuple(sessions),
        signature=signature,
        providers=tuple(sessions[0].get_providers()),
        identity=identify(path, sessions[0]),
    )


def _to_runtime(name: str, array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # ONNX string tensors hold text: ORT would store repr(b"...") for bytes items.
    if array.dtype != np.object_:
        return array
    try:
        text = np.empty(array.shape, dtype=np.object_)
        text.reshape(-1)[:] = [item.decode("utf-8") if isinstance(item, bytes) else item for item in array.reshape(-1)]
    except UnicodeDecodeError:
        message = f"input '{name}' has an element that is not UTF-8; ONNX string tensors hold text"
        raise InvalidInputError(message) from None
    return text


def _from_runtime(array: Any) -> npt.NDArray[Any]:
    result = np.asarray(array)
    if result.dtype.kind in "OU":
        encoded = np.empty(result.shape, dtype=np.object_)
        encoded.reshape(-1)[:] = [str(item).encode("utf-8") for item in result.reshape(-1)]
        return encoded
    return result


class OnnxRunner:
    """Runs a loaded version on the inference pool's threads, each execution on a session of its own.

    An instance is one session running one batch at a time: an execution takes an idle session and
    gives it back when the runtime returns (picking round-robin let two batches share a session while
    another idled). Each session keeps a thread of the pool reserved while the runner lives, so this
    model's executions never wait for a thread behind another model's (server.runtime.pool).
    """

    def __init__(self, model: LoadedOnnxModel, pool: InferencePool, label: str) -> None:
        self._sessions = SessionPool(model.sessions, label)
        self._pool = pool
        self._label = label
        self._reserved = len(model.sessions)
        pool.reserve(self._reserved)

    async def run(self, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> RunResult:
        session = self._sessions.take()
        if session is None:  # more executions than instances (a direct caller, not the batcher): queue for one
            session = await self._sessions.wait()
        submitted = time.perf_counter_ns()
        try:
            future = self._pool.submit(self._run_blocking, session, inputs, output_names, submitted)
        except BaseException:
            self._sessions.give_back(session)
            raise
        return await future

    def _run_blocking(
        self, session: Any, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str], submitted: int
    ) -> RunResult:
        started = time.perf_counter_ns()
        try:
            feed = {name: _to_runtime(name, array) for name, array in inputs.items()}
            prepared = time.perf_counter_ns()
            raw_outputs = session.run(list(output_names), feed)
        except InvalidInputError:
            raise
        except Exception as exc:  # onnxruntime's errors carry the useful detail in the text
            raise InferenceFailedError(f"model {self._label} failed in onnxruntime: {exc}") from None
        finally:
            # Here, not when the caller resumes: the session is free exactly when the runtime returns.
            self._sessions.give_back(session)
        finished = time.perf_counter_ns()
        outputs = {name: _from_runtime(value) for name, value in zip(output_names, raw_outputs, strict=True)}
        converted = time.perf_counter_ns()
        timings = RunTimings(
            queue_ns=started - submitted,
            input_ns=prepared - started,
            infer_ns=finished - prepared,
            output_ns=converted - finished,
        )
        return RunResult(outputs=outputs, timings=timings)

    def close(self) -> None:
        # Sessions free their memory when the last reference goes; drop ours.
        self._sessions.close()
        self._pool.release(self._reserved)
        self._reserved = 0  # closing twice releases once
