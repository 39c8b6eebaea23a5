"""`python -m server` as a real process: start-up log, side port, SIGTERM drains in-flight requests."""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np

from clients import InferenceClient
from tests.support import onnx_models
from tests.support.process import ServerProcess


def test_sigterm_drains_in_flight_requests_then_exits_cleanly(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "slow", onnx_models.slow_matmul())
    onnx_models.write_model(tmp_path, "corrupt", b"not onnx")
    x = np.random.default_rng(0).random((1, 3000), dtype=np.float32)  # roughly half a second per request
    # Lenient readiness: ready although "corrupt" failed (strict, the default, would keep it not ready).
    args = ("--graceful-shutdown", "30", "--intra-op-threads", "1", "--lenient-readiness")
    server = ServerProcess(tmp_path, *args).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/v2/health/ready", timeout=5) as response:
            assert response.status == 200
        results: list[object] = []

        def call() -> None:
            with InferenceClient(server.address, timeout=60) as client:
                try:
                    results.append(client.infer("slow", {"x": x}))
                except Exception as error:  # recorded and asserted below
                    results.append(error)

        workers = [threading.Thread(target=call) for _ in range(3)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + 30
        while server.metric("inference_pending_requests", model="slow") < 3:
            assert time.monotonic() < deadline, "requests never reached the server"
            time.sleep(0.01)
        server.terminate()
        for worker in workers:
            worker.join(60)
        assert server.wait(60) == 0
    finally:
        server.stop()
    assert len(results) == 3
    for result in results:
        assert isinstance(result, dict), result
        assert result["y"].shape == (1, 1)
    messages = [entry["msg"] for entry in server.logs]
    assert "shutdown requested; draining" in messages
    assert messages[-1] == "server stopped"
    failures = [entry for entry in server.logs if entry.get("model") == "corrupt" and entry["level"] == "error"]
    assert failures and "onnxruntime could not load" in failures[0]["reason"]


def test_bad_repository_path_is_a_clear_error(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "missing")
    completed = subprocess.run(server.args, check=False, env=server.env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "model repository is not a directory" in completed.stderr


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(tmp_path)
        args = [arg if arg != "0" or server.args[i - 1] != "--grpc-port" else str(taken.getsockname()[1])
                for i, arg in enumerate(server.args)]  # fmt: skip
        completed = subprocess.run(args, check=False, env=server.env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "could not bind gRPC" in completed.stderr
    messages = [json.loads(line).get("msg") for line in completed.stderr.splitlines() if line.startswith("{")]
    failed = messages.index("server failed to start")
    assert messages.count("server failed to start") == 1
    assert "server stopped" not in messages[:failed]  # the failure first, then the stop that follows it


def test_settings_errors_name_the_flag_and_the_value(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path, "--workers", "0")
    completed = subprocess.run(server.args, check=False, env=server.env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 2
    assert "--workers (SERVER_WORKERS)" in completed.stderr and "(got 0)" in completed.stderr
    assert "pydantic" not in completed.stderr and "Traceback" not in completed.stderr


def test_a_mistyped_environment_variable_is_warned_about(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    with ServerProcess(tmp_path, env={"SERVER_GRCP_PORT": "9"}) as server:
        warnings = [line for line in server.logs if line.get("variable") == "SERVER_GRCP_PORT"]
    assert len(warnings) == 1 and warnings[0]["did_you_mean"] == "SERVER_GRPC_PORT"
    assert warnings[0]["level"] == "warning"
