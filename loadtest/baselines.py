"""Reference points measured in the same run as the load test, so reports can state ratios.

- the Python gRPC floor: `FloorServer` runs `loadtest.floor_server`, which answers ModelInfer with the
  bytes the real target returned (`canned_response`);
- the compute ceiling: `measure_onnxruntime` runs the model in process, with no server at all.
"""

from __future__ import annotations

import contextlib
import json
import select
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import grpc
import numpy as np
import numpy.typing as npt
import onnxruntime as ort

from loadtest.errors import LoadTestError
from loadtest.target import INFER_METHOD

REPO_ROOT = Path(__file__).resolve().parents[1]
#: Upper bound on `session.run` calls per batch size, whatever `duration_s` says.
MAX_RUNS = 1_000_000
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


class FloorServer:
    """`python -m loadtest.floor_server` as a child process answering with `response`; a context manager."""

    def __init__(
        self,
        response: bytes,
        *,
        port: int = 0,
        use_uvloop: bool = True,
        launcher: Sequence[str] = (),
        start_timeout_s: float = 30.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._response = response
        self._requested_port = port
        self._use_uvloop = use_uvloop
        self._launcher = tuple(launcher)
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._stderr: IO[bytes] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        """The server process (the launcher's, when it execs the server in place, as valgrind does)."""
        if self._process is None:
            raise LoadTestError("the floor server is not running")
        return self._process.pid

    @property
    def address(self) -> str:
        if not self.port:
            raise LoadTestError("the floor server is not running")
        return f"127.0.0.1:{self.port}"

    def start(self) -> FloorServer:
        self._tmp = tempfile.TemporaryDirectory(prefix="loadtest-floor-")
        try:
            self._spawn(Path(self._tmp.name))
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, workdir: Path) -> None:
        response_file = workdir / "response.bin"
        response_file.write_bytes(self._response)
        port = str(self._requested_port)
        args = [*self._launcher, sys.executable, "-m", "loadtest.floor_server", "--host", "127.0.0.1", "--port", port]
        args += ["--response-file", str(response_file), *([] if self._use_uvloop else ["--no-uvloop"])]
        # stderr goes to a file, not a pipe: nobody reads it while the server runs, and a full pipe would block it.
        self._stderr = (workdir / "stderr.txt").open("w+b")
        self._process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=self._stderr)

    def _read_port(self) -> int:
        assert self._process is not None and self._process.stdout is not None
        stdout = self._process.stdout
        deadline = time.monotonic() + self._start_timeout_s
        while (remaining := deadline - time.monotonic()) > 0:
            # select, so a child that hangs before printing cannot block us past the deadline.
            ready, _, _ = select.select([stdout], [], [], min(remaining, 0.1))
            if ready:
                line = stdout.readline()
                if not line:
                    break
                return _parse_port(line)
            if self._process.poll() is not None:
                break
        # stdout closes just before the process is reaped: give it a moment to report its exit code.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._process.wait(timeout=1.0)
        state = "timed out" if self._process.poll() is None else f"exited with {self._process.returncode}"
        raise LoadTestError(f"the floor server did not start ({state}): {self._stderr_tail()}")

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:] or "(no output)"

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout_s`; closes the pipe and removes the temp files."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.send_signal(signal.SIGTERM)
                try:
                    self._process.wait(self._stop_timeout_s)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            if self._process.stdout is not None:
                self._process.stdout.close()
            self._process = None
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
        self.port = 0

    def __enter__(self) -> FloorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _parse_port(line: bytes) -> int:
    try:
        port = json.loads(line)["grpc_port"]
    except (ValueError, KeyError, TypeError):
        port = None
    if not isinstance(port, int) or port <= 0:
        raise LoadTestError(f'the floor server printed {line!r}, expected {{"grpc_port": N}}')
    return port


def canned_response(address: str, payload: bytes, timeout_s: float = 10) -> bytes:
    """Send the serialized ModelInferRequest once to `address`; the raw response bytes."""
    # No (de)serializers: the bytes go out and come back untouched.
    with grpc.insecure_channel(address, options=_CHANNEL_OPTIONS) as channel:
        infer: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            INFER_METHOD, request_serializer=None, response_deserializer=None
        )
        try:
            response: bytes = infer(payload, timeout=timeout_s)
        except grpc.RpcError as error:
            code = error.code().name if isinstance(error, grpc.Call) else "ERROR"
            details = error.details() if isinstance(error, grpc.Call) else str(error)
            raise LoadTestError(f"ModelInfer on {address} failed: {code}: {details}") from None
    return response


def model_file(repository: Path, model: str, version: str) -> Path:
    """repository/model/<version, or the highest numeric one>/<model_filename from config.toml, or model.onnx>."""
    model_dir = repository / model
    if not model_dir.is_dir():
        raise LoadTestError(f"model '{model}' has no directory in {repository}")
    version = version or _highest_version(model_dir)
    path = model_dir / version / _model_filename(model_dir)
    if not path.is_file():
        raise LoadTestError(f"model file {path} does not exist")
    return path


def _highest_version(model_dir: Path) -> str:
    versions = [int(child.name) for child in model_dir.iterdir() if child.is_dir() and child.name.isdigit()]
    if not versions:
        raise LoadTestError(f"{model_dir} has no numeric version directories")
    return str(max(versions))


def _model_filename(model_dir: Path) -> str:
    config = model_dir / "config.toml"
    if not config.is_file():
        return "model.onnx"
    try:
        name = tomllib.loads(config.read_text()).get("model_filename", "model.onnx")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise LoadTestError(f"cannot read {config}: {error}") from None
    if not isinstance(name, str) or not name:
        raise LoadTestError(f"{config}: model_filename must be a non-empty string")
    return name


def measure_onnxruntime(
    model_path: Path,
    inputs: Mapping[str, npt.NDArray[Any]],
    batch_sizes: Sequence[int],
    intra_op_threads: int = 0,
    duration_s: float = 2.0,
    warmup_runs: int = 3,
) -> dict[int, float]:
    """Inferences/s of one in-process ONNX Runtime CPU session at each batch size: the compute ceiling.

    The single-request `inputs` are tiled or sliced along axis 0 to each batch size. A model without a
    dynamic dimension 0 cannot batch: its inputs run as given and count as batch 1 (one request).
    """
    session = _session(model_path, intra_op_threads)
    feeds = {name: _to_runtime(array) for name, array in inputs.items()}
    if not _batchable(session):
        return {1: _rate(session, feeds, 1, duration_s, warmup_runs)}
    return {size: _rate(session, _resize(feeds, size), size, duration_s, warmup_runs) for size in batch_sizes}


def _session(model_path: Path, intra_op_threads: int) -> Any:
    if not model_path.is_file():
        raise LoadTestError(f"model file {model_path} does not exist")
    # The same knobs as the server's sessions, so the ceiling is comparable.
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several unrelated types for bad files
        raise LoadTestError(f"onnxruntime could not load {model_path}: {error}") from None


def _batchable(session: Any) -> bool:
    # A named or unknown (None) leading dimension is dynamic; an integer one is fixed.
    return all(len(arg.shape) > 0 and not isinstance(arg.shape[0], int) for arg in session.get_inputs())


def _to_runtime(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    # ONNX string tensors hold text: ORT would store repr(b"...") for bytes items.
    if array.dtype != np.object_:
        return array
    flat = [item.decode("utf-8") if isinstance(item, bytes) else item for item in array.reshape(-1)]
    text = np.empty(array.size, dtype=np.object_)
    text[:] = flat
    return text.reshape(array.shape)


def _resize(feeds: Mapping[str, npt.NDArray[Any]], batch_size: int) -> dict[str, npt.NDArray[Any]]:
    """Repeat (or cut) the rows of every input to `batch_size` rows."""
    if batch_size < 1:
        raise LoadTestError(f"batch size {batch_size} must be at least 1")
    resized = {}
    for name, array in feeds.items():
        if array.ndim == 0 or array.shape[0] == 0:
            raise LoadTestError(f"input '{name}' has no rows to tile to batch {batch_size}")
        resized[name] = np.take(array, np.arange(batch_size) % array.shape[0], axis=0)
    return resized


def _rate(
    session: Any, feeds: Mapping[str, npt.NDArray[Any]], batch_size: int, duration_s: float, warmup: int
) -> float:
    try:
        for _ in range(max(warmup, 1)):  # at least once, so a bad input fails here with a clear message
            session.run(None, feeds)
    except Exception as error:  # onnxruntime's errors share no useful base class
        raise LoadTestError(f"onnxruntime failed at batch {batch_size}: {error}") from None
    runs = 0
    start = time.perf_counter()
    elapsed = 0.0
    while runs < MAX_RUNS and elapsed < duration_s:
        session.run(None, feeds)
        runs += 1
        elapsed = time.perf_counter() - start
    return runs * batch_size / elapsed
