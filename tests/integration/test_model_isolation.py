"""Model isolation: a model whose queue overflows does not slow another model (docs/reliability.md).

`heavy` is given executions of about a second each and far more callers than its instances and queue
hold, so it runs flat out and refuses the rest; `light` is then timed. Before, every model shared a
fixed pool of inference threads, first come first served: `light`'s next execution waited behind
`heavy`'s (about a second), and `heavy`'s compute threads starved the event loop. Now each instance
keeps a thread of its own and compute runs below the loop's priority.

The stated bound: while `heavy` overflows, `light`'s p99 stays under 250 ms (its p50 alone is about
2 ms; one `heavy` execution takes at least 500 ms, so waiting behind one shows up at once).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.flood import Flood
from tests.support.process import ServerProcess

HEAVY_CONFIG = """
max_batch_size = 1
[instances]
count = 4
[batching]
max_queue_size = 4
"""
LIGHT_BOUND_MS = 250.0
HEAVY_EXECUTION_S = 0.5


def heavy_request(width: int) -> bytes:
    return infer_request("heavy", {"x": np.ones((1, width), np.float32)}).SerializeToString()


def calibrate(stub: pb_grpc.GRPCInferenceServiceStub) -> int:
    """A `heavy` width whose single execution takes at least HEAVY_EXECUTION_S on this machine (cost ~ width^3)."""
    width = 256
    while True:
        request = infer_request("heavy", {"x": np.ones((1, width), np.float32)})
        started = time.perf_counter()
        stub.ModelInfer(request, timeout=120)
        elapsed = time.perf_counter() - started
        if elapsed >= HEAVY_EXECUTION_S or width >= 8192:
            return width
        width = int(width * min(2.0, max(1.1, (HEAVY_EXECUTION_S * 1.5 / elapsed) ** (1 / 3))))


def light_latencies_ms(stub: pb_grpc.GRPCInferenceServiceStub, count: int, budget_s: float = 15) -> list[float]:
    """Up to `count` sequential `light` calls, 20 ms apart, for at most about `budget_s`; sorted latencies."""
    request = infer_request("light", {"INPUT0": np.ones((1, 3), np.float32)})
    latencies = []
    give_up = time.monotonic() + budget_s
    while len(latencies) < count and time.monotonic() < give_up:
        started = time.perf_counter()
        stub.ModelInfer(request, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.02)
    return sorted(latencies)


def test_an_overflowing_model_does_not_slow_another(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path / "repo", "heavy", onnx_models.slow_rows(), config=HEAVY_CONFIG)
    onnx_models.write_model(tmp_path / "repo", "light", onnx_models.identity("FP32"))
    # Two shared threads for four heavy instances: what a small machine's default pool was to a busy model.
    server = ServerProcess(tmp_path / "repo", "--inference-threads", "2")
    with server, grpc.insecure_channel(server.address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        light_latencies_ms(stub, 5)  # warm
        request_file = tmp_path / "heavy.bin"
        request_file.write_bytes(heavy_request(calibrate(stub)))
        flood = Flood(server.address, 16, request_file)  # 4 running + 4 queued; the rest refused, again and again
        try:
            deadline = time.monotonic() + 120
            while (counts := flood.counts()).get("OK", 0) < 1 or counts.get("RESOURCE_EXHAUSTED", 0) < 10:
                assert time.monotonic() < deadline, f"heavy never both answered and overflowed: {counts}"
            latencies = light_latencies_ms(stub, 100)
            counts = flood.counts()
        finally:
            flood.stop()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    assert set(counts) <= {"OK", "RESOURCE_EXHAUSTED"}, counts  # heavy's excess is refused, nothing else
    p50 = latencies[len(latencies) // 2]
    assert p99 < LIGHT_BOUND_MS, f"light p99 {p99:.0f} ms (p50 {p50:.1f} ms) while heavy overflowed"


def thread_nice_values(pid: int) -> dict[int, int]:
    """Nice value of each thread of a process, by thread id (Linux /proc)."""
    values = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        values[int(task.name)] = int(fields[16])  # stat field 19, counted after the command name
    return values


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")
def test_compute_threads_run_below_the_event_loop(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "light", onnx_models.identity("FP32"))
    with ServerProcess(tmp_path, "--compute-nice", "7") as server, grpc.insecure_channel(server.address) as channel:
        light_latencies_ms(pb_grpc.GRPCInferenceServiceStub(channel), 3)  # starts the inference threads
        nice = thread_nice_values(server.process.pid)
    assert nice[server.process.pid] == 0  # the main thread runs the event loop
    assert sorted(set(nice.values())) == [0, 7]  # inference, load and ONNX Runtime threads are lowered
