"""Seldon MLServer as a benchmark peer of loadtest.peer_bench (configuration "mlserver", the mlp model only).

MLServer runs from its own virtual environment (loadtest/setup_mlserver.sh, /tmp/peer-mlserver) with our custom
runtime (loadtest/mlserver_runtime.py: ONNX Runtime, one intra-op and one inter-op thread, as the other servers) and
MLServer's adaptive batching (max batch 32, as Triton's and ours).

Successes: MLServer has no ModelStatistics (a Triton extension), which `python -m loadtest --engine h2load` needs
because h2load counts gRPC errors as HTTP 200 successes. MLServer's Prometheus endpoint has a per-model counter,
`model_infer_request_success` (`model_infer_request_failure` beside it), incremented by its data plane once the
model's predict has returned without an exception. `MLServerTarget` reads it in place of ModelStatistics, and
`load` drives the same h2load engine in-process, so successes are MLServer's own count over the measured run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtest.baselines import model_file
from loadtest.engines.h2load_engine import run_h2load
from loadtest.errors import LoadTestError
from loadtest.local_server import free_ports
from loadtest.runner import RunOptions, prepare
from loadtest.target import StatsSnapshot, Target

VENV = Path(os.environ.get("PEER_MLSERVER_VENV", "/tmp/peer-mlserver"))
RUNTIME = "mlserver_runtime.OnnxModel"
"""Our runtime's import path: its folder (loadtest/) goes on MLServer's PYTHONPATH, nothing else of ours."""
RUNTIME_DIR = Path(__file__).resolve().parent
MAX_BATCH_SIZE = 32
MAX_BATCH_TIME_S = 0.001
"""How long MLServer's adaptive batcher waits for a batch to fill (it batches only when this is > 0). Short on
purpose: under load the requests that arrive while a batch computes are already queued, and a longer wait only adds
its full length to a request whenever the queue runs dry (at low load, every batch-1 request would wait it out).
MLServer's cost here is its Python request path (~1 ms a request), not the model: at concurrency 64 on 2 cores,
5 ms and 10 ms gave larger batches (mostly 6-12 against 1-3) but no consistent gain in req/s (2026-12-01, noisy).
Triton's peer waits 0 us."""
PARALLEL_WORKERS = 0
"""0: inference in MLServer's main process, beside its gRPC server. On the 2-core machine this served mlp at
concurrency 64 faster than 1 inference worker process (1,000-1,600 against 650-750 req/s, 2026-12-01): each request
and response then crosses a multiprocessing queue."""
READY_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 15.0
_ONNX_DATATYPES = {
    "tensor(float)": "FP32", "tensor(double)": "FP64", "tensor(float16)": "FP16", "tensor(int64)": "INT64",
    "tensor(int32)": "INT32", "tensor(int16)": "INT16", "tensor(int8)": "INT8", "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
}  # fmt: skip


def available() -> bool:
    """Whether loadtest/setup_mlserver.sh has installed MLServer."""
    return (VENV / "bin" / "mlserver").is_file()


@dataclass(frozen=True, slots=True)
class Ports:
    grpc: int
    http: int
    metrics: int

    @staticmethod
    def free() -> Ports:
        return Ports(*free_ports(3))


@dataclass(frozen=True, slots=True)
class TensorSpec:
    """A model input or output as MLServer's metadata describes it (-1 for a dynamic dimension)."""

    name: str
    datatype: str
    shape: tuple[int, ...]


def server_settings(ports: Ports, parallel_workers: int = PARALLEL_WORKERS) -> dict[str, Any]:
    """settings.json: loopback only; no per-request access log (`debug`), metrics kept on for the success count."""
    return {
        "host": "127.0.0.1",
        "grpc_port": ports.grpc,
        "http_port": ports.http,
        "metrics_port": ports.metrics,
        "metrics_endpoint": "/metrics",
        "parallel_workers": parallel_workers,
        "debug": False,
        "load_models_at_startup": True,
    }


def model_settings(
    name: str,
    uri: Path,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    *,
    max_batch_size: int = MAX_BATCH_SIZE,
    max_batch_time_s: float = MAX_BATCH_TIME_S,
) -> dict[str, Any]:
    """model-settings.json: our runtime on `uri`, adaptive batching, and the tensors for ModelMetadata (which the
    load tester reads to build its request)."""

    def tensors(specs: list[TensorSpec]) -> list[dict[str, Any]]:
        return [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in specs]

    return {
        "name": name,
        "implementation": RUNTIME,
        "parameters": {"uri": str(uri.resolve())},
        "max_batch_size": max_batch_size,
        "max_batch_time": max_batch_time_s,
        "inputs": tensors(inputs),
        "outputs": tensors(outputs),
    }


def onnx_signature(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an ONNX file, read by ONNX Runtime."""
    import onnxruntime as ort  # noqa: PLC0415 (only when starting MLServer)

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def spec(tensor: Any) -> TensorSpec:
        if tensor.type not in _ONNX_DATATYPES:
            raise LoadTestError(f"{path}: {tensor.name} has type {tensor.type}, which the MLServer peer does not map")
        shape = tuple(d if isinstance(d, int) else -1 for d in tensor.shape)
        return TensorSpec(tensor.name, _ONNX_DATATYPES[tensor.type], shape)

    return [spec(t) for t in session.get_inputs()], [spec(t) for t in session.get_outputs()]


def write_folder(folder: Path, repository: Path, model: str, ports: Ports, parallel_workers: int) -> None:
    """An MLServer folder: folder/settings.json and folder/<model>/model-settings.json."""
    path = model_file(repository, model, "")
    inputs, outputs = onnx_signature(path)
    (folder / model).mkdir(parents=True, exist_ok=True)
    (folder / "settings.json").write_text(json.dumps(server_settings(ports, parallel_workers), indent=2))
    settings = model_settings(model, path, inputs, outputs)
    (folder / model / "model-settings.json").write_text(json.dumps(settings, indent=2))


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLSERVER_", "PYTHON", "VIRTUAL_ENV"))}
    env["PYTHONPATH"] = str(RUNTIME_DIR)
    env["PATH"] = f"{VENV / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env


def _model_ready(http_port: int, model: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/models/{model}/ready", timeout=2) as reply:
            return bool(reply.status == 200)
    except OSError:  # urllib.error.HTTPError (503 while loading) included
        return False


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines() if log.is_file() else []
    return lines[-1] if lines else "(no output)"


@contextmanager
def mlserver(
    repository: Path, model: str, *, ports: Ports | None = None, parallel_workers: int = PARALLEL_WORKERS
) -> Iterator[str]:
    """MLServer serving `model` of a peer-models repository (repository/<model>/<version>/model.onnx); yields its
    gRPC address "127.0.0.1:PORT" once the model is ready, and stops it on exit (SIGTERM, then SIGKILL)."""
    if not available():
        raise LoadTestError(f"MLServer is not installed in {VENV}: run loadtest/setup_mlserver.sh")
    ports = ports or Ports.free()
    with tempfile.TemporaryDirectory(prefix="peer-mlserver-") as name:
        folder = Path(name)
        write_folder(folder, repository, model, ports, parallel_workers)
        log = folder / "mlserver.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                [str(VENV / "bin" / "mlserver"), "start", str(folder)],
                cwd=folder, env=_environment(), stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while not _model_ready(ports.http, model):
                if process.poll() is not None:
                    raise LoadTestError(f"MLServer exited with {process.returncode}: {_last_line(log)}")
                if time.monotonic() > deadline:
                    raise LoadTestError(f"MLServer's {model} not ready in {READY_TIMEOUT_S:.0f} s: {_last_line(log)}")
                time.sleep(0.2)
            yield f"127.0.0.1:{ports.grpc}"
        finally:
            _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to MLServer (it stops its workers), then SIGKILL to its process group after STOP_TIMEOUT_S."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def parse_counts(text: str, model: str) -> tuple[int, int]:
    """(successes, failures) of `model` from MLServer's Prometheus text, summed over versions."""
    counts = {"model_infer_request_success": 0.0, "model_infer_request_failure": 0.0}
    for family in text_string_to_metric_families(text):
        if family.name in counts:
            for sample in family.samples:
                if sample.name == f"{family.name}_total" and sample.labels.get("model") == model:
                    counts[family.name] += sample.value
    return int(counts["model_infer_request_success"]), int(counts["model_infer_request_failure"])


def inference_counts(metrics_port: int, model: str) -> tuple[int, int]:
    """(successes, failures) of `model` so far, from MLServer's metrics endpoint."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError as error:
        raise LoadTestError(f"cannot read MLServer's metrics on port {metrics_port}: {error}") from None
    return parse_counts(text, model)


class MLServerTarget(Target):
    """An MLServer under test: its inference counters from the metrics endpoint stand in for ModelStatistics
    (successes and failures only; MLServer has no queue/compute breakdown)."""

    def __init__(self, address: str, metrics_port: int) -> None:
        super().__init__(address)
        self.metrics_port = metrics_port

    def statistics(self, model: str, version: str = "") -> StatsSnapshot | None:
        successes, failures = inference_counts(self.metrics_port, model)
        return StatsSnapshot(success_count=successes, fail_count=failures)


def load(address: str, metrics_port: int, model: str, *, seconds: float = 2.0, warmup_s: float = 1.0) -> dict[str, Any]:
    """What peer_bench.load measures (h2load, 64 in flight as 4 connections x 16 streams, batch-1 requests built
    from the model's metadata, over 2 windows of `seconds`), with successes from MLServer's counters. The level
    as a report.json level."""
    options = RunOptions(target=address, model=model, engine="h2load", levels=(64.0,), warmup_s=warmup_s)
    with MLServerTarget(address, metrics_port) as target:
        prepared = prepare(target, options)
        level = run_h2load(target, address, model, "", prepared.payload, 1, 64, warmup_s, seconds * 2)
    level.notes.append(
        "successes and failures from MLServer's Prometheus counters model_infer_request_success/_failure "
        "(it has no ModelStatistics), read like ModelStatistics before and after the run"
    )
    return asdict(level)
