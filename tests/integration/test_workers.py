"""`python -m server --workers 2`: one gRPC port served by two processes, one /metrics for both."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from contextlib import ExitStack, suppress
from pathlib import Path
from typing import Any

import numpy as np

from clients import InferenceClient
from tests.support import onnx_models
from tests.support.process import ServerProcess

CONNECTIONS = 24
REQUESTS_EACH = 5
#: A private subchannel pool gives every client its own TCP connection instead of a shared one.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]


def ready_status(server: ServerProcess) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.http_port}/v2/health/ready", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def logged(server: ServerProcess, msg: str) -> list[dict[str, Any]]:
    return [entry for entry in list(server.logs) if entry.get("msg") == msg]


def wait_for(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop_cleanly(server: ServerProcess) -> None:
    server.terminate()
    assert server.wait(60) == 0
    assert server.logs[-1]["msg"] == "server stopped", server.logs[-5:]


def test_connections_spread_over_both_workers_and_metrics_add_up(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    server = ServerProcess(tmp_path, "--workers", "2").start()
    try:
        assert ready_status(server) == 200
        pids = {entry["pid"] for entry in logged(server, "worker started")}
        assert len(pids) == 2
        assert {entry["pid"] for entry in logged(server, "worker ready")} == pids
        assert all(entry["grpc_port"] == server.grpc_port for entry in logged(server, "worker listening"))

        with ExitStack() as stack:
            clients = [
                stack.enter_context(InferenceClient(server.address, channel_options=OWN_CONNECTION))
                for _ in range(CONNECTIONS)
            ]
            for i, client in enumerate(clients):
                for j in range(REQUESTS_EACH):
                    x = np.full((1, 3), i * REQUESTS_EACH + j, dtype=np.float32)
                    np.testing.assert_array_equal(client.infer("identity", {"INPUT0": x})["OUTPUT0"], x)
            # A connection stays with the worker that accepted it, and ModelStatistics is per
            # worker: each client sees the request count of its own worker.
            served = [
                sum(stats.inference_stats.success.count for stats in client.model_statistics("identity"))
                for client in clients
            ]

        total = CONNECTIONS * REQUESTS_EACH
        # Workers move buffered samples into the shared files every 0.1 s (server.app.METRICS_FLUSH_S).
        wait_for(lambda: server.metric("inference_requests_total", model="identity", code="OK") >= total, "flush", 10)
        assert server.metric("inference_requests_total", model="identity", code="OK") == total
        assert server.metric("inference_model_ready", model="identity") == 1
        assert server.metric("inference_pending_requests", model="identity") == 0
        # Two workers, each serving part, their parts adding up. This fails only if the kernel
        # hashed all 24 connections onto one worker: probability 2 * 2**-24, about 1e-7.
        counts = set(served)
        assert max(counts) < total, served
        assert sum(counts) == total or counts == {total // 2}, served
        stop_cleanly(server)
    finally:
        server.stop()
    exited = logged(server, "worker exited")
    assert {entry["pid"] for entry in exited} == pids
    assert all(entry["exit_code"] == 0 for entry in exited)


def test_sigterm_drains_in_flight_requests_on_every_worker(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "slow", onnx_models.slow_matmul())
    x = np.random.default_rng(0).random((1, 3000), dtype=np.float32)  # about half a second per request
    server = ServerProcess(tmp_path, "--workers", "2", "--graceful-shutdown", "30", "--intra-op-threads", "1")
    server.start()
    results: list[object] = []

    def call() -> None:
        with InferenceClient(server.address, timeout=60, channel_options=OWN_CONNECTION) as client:
            try:
                results.append(client.infer("slow", {"x": x}))
            except Exception as error:  # recorded and asserted below
                results.append(error)

    try:
        callers = [threading.Thread(target=call) for _ in range(4)]
        for caller in callers:
            caller.start()
        # The pending gauge is summed over the live workers.
        wait_for(lambda: server.metric("inference_pending_requests", model="slow") >= 4, "requests in flight", 30)
        stop_cleanly(server)
        for caller in callers:
            caller.join(60)
    finally:
        server.stop()
    assert len(results) == 4
    for result in results:
        assert isinstance(result, dict), result
        assert result["y"].shape == (1, 1)
    messages = [entry["msg"] for entry in server.logs]
    assert messages.count("worker stopped") == 2
    assert "shutdown requested; draining" in messages


def test_a_killed_worker_is_replaced(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    server = ServerProcess(tmp_path, "--workers", "2").start()
    try:
        victim = logged(server, "worker started")[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(logged(server, "server ready")) == 2, "the replacement to be ready")
        messages = [(entry["msg"], entry.get("pid")) for entry in server.logs]
        exited_at = messages.index(("worker exited", victim))
        ready_at = [i for i, (msg, _) in enumerate(messages) if msg == "server ready"]
        # Readiness was withdrawn with the exit and announced again once the replacement was ready.
        assert ready_at[0] < exited_at < ready_at[1]
        started = [entry["pid"] for entry in logged(server, "worker started")]
        assert len(started) == 3
        assert ready_status(server) == 200
        with ExitStack() as stack:
            for _ in range(8):
                client = stack.enter_context(InferenceClient(server.address, channel_options=OWN_CONNECTION))
                x = np.ones((2, 3), dtype=np.float32)
                np.testing.assert_array_equal(client.infer("identity", {"INPUT0": x})["OUTPUT0"], x)
        assert server.metric("inference_model_ready", model="identity") == 1
        stop_cleanly(server)
    finally:
        server.stop()


def test_a_crash_loop_stops_the_server_with_exit_code_1(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    server = ServerProcess(tmp_path, "--workers", "2").start()
    killed: set[int] = set()
    try:
        survivor = logged(server, "worker started")[1]["pid"]
        deadline = time.monotonic() + 60
        while server.process.poll() is None:  # kill every other worker as soon as it starts
            for entry in logged(server, "worker started"):
                if entry["pid"] not in killed | {survivor}:
                    with suppress(ProcessLookupError):
                        os.kill(entry["pid"], signal.SIGKILL)
                    killed.add(entry["pid"])
            assert time.monotonic() < deadline, "the supervisor never gave up"
            time.sleep(0.02)
        assert server.wait(60) == 1
    finally:
        server.stop()
    assert len(killed) == 6  # the first worker and its five allowed replacements
    failure = logged(server, "stopping the server")
    assert failure and "restart budget" in failure[0]["reason"]
    assert server.logs[-1]["msg"] == "server stopped"


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "identity", onnx_models.identity("FP32"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = ServerProcess(tmp_path, "--workers", "2")
        args = [str(taken.getsockname()[1]) if server.args[i - 1] == "--grpc-port" else arg
                for i, arg in enumerate(server.args)]  # fmt: skip
        completed = subprocess.run(args, check=False, env=server.env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert "Traceback" not in completed.stderr
    assert "could not bind gRPC" in completed.stderr
    assert "worker started" not in completed.stderr
