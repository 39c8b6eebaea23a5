"""ModelStreamInfer under a client that misbehaves: sends without reading, or cancels mid-stream."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

import grpc
import numpy as np

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.flood import Flood
from tests.support.process import ServerProcess

MIB = 1024 * 1024


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def repository(root: Path) -> Path:
    onnx_models.write_model(root, "wide", onnx_models.identity("FP32", ("batch", "n")), config="max_batch_size = 8\n")
    return root


def one_mib_request(index: int) -> pb.ModelInferRequest:
    return infer_request("wide", {"INPUT0": np.full((1, MIB // 4), index, np.float32)}, id=str(index))


def test_a_stream_that_is_not_read_holds_bounded_memory(tmp_path: Path) -> None:
    with ServerProcess(repository(tmp_path)) as server:

        async def flood() -> int:
            written = 0
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = pb_grpc.GRPCInferenceServiceStub(channel).ModelStreamInfer()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(6.0):  # never reading a response
                        for index in range(200):
                            await call.write(one_mib_request(index))
                            written += 1
                rss = rss_bytes(server.process.pid)
                call.cancel()
            return written, rss

        before = rss_bytes(server.process.pid)
        written, during = asyncio.run(flood())
        # Unbounded, the server read all 200 MiB and answered them (about 480 MB more). Now it stops reading
        # once a stream holds 64 MiB of requests and their responses; flow control holds the client back.
        assert written < 200
        assert during - before < 200 * MIB, (written, (during - before) // MIB)


def test_a_client_cancelling_a_busy_stream_leaves_no_error_in_the_log(tmp_path: Path) -> None:
    with ServerProcess(repository(tmp_path)) as server:

        async def cancel_mid_stream() -> None:
            async with grpc.aio.insecure_channel(server.address) as channel:
                stub = pb_grpc.GRPCInferenceServiceStub(channel)
                for _ in range(5):
                    call = stub.ModelStreamInfer()
                    for index in range(20):
                        await call.write(
                            infer_request("wide", {"INPUT0": np.ones((1, 1000), np.float32)}, id=str(index))
                        )
                    await call.read()  # some are being served right now
                    call.cancel()
                await asyncio.sleep(0.5)
                response = await stub.ModelInfer(infer_request("wide", {"INPUT0": np.ones((1, 4), np.float32)}))
                assert response.model_name == "wide"  # still serving

        asyncio.run(cancel_mid_stream())
        server.stop()
        errors = [line for line in server.logs if line.get("level") in ("error", "critical")]
        assert errors == []


def test_a_client_process_killed_mid_calls_leaves_no_error_in_the_log(tmp_path: Path) -> None:
    # The client dies with streams and unary calls in flight: its connection just closes, nothing is cancelled
    # politely. The server must drop that work quietly and keep serving.
    request_file = tmp_path / "request.bin"
    request_file.write_bytes(
        infer_request("wide", {"INPUT0": np.ones((1, 256 * 1024), np.float32)}, id="x" * 64).SerializeToString()
    )
    with ServerProcess(repository(tmp_path / "repo")) as server:
        for streamed in (True, False, True):
            flood = Flood(server.address, 12, request_file, streamed=streamed)
            deadline = time.monotonic() + 30
            while flood.counts().get("OK", 0) < 20:  # calls are being answered, so many are in flight
                assert time.monotonic() < deadline
            flood.stop()
        with grpc.insecure_channel(server.address) as channel:
            response = pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(
                infer_request("wide", {"INPUT0": np.ones((1, 4), np.float32)})
            )
        assert response.model_name == "wide"  # still serving
        server.stop()
    noisy = [
        line for line in server.logs if line.get("level") in ("warning", "error", "critical") or "level" not in line
    ]
    assert noisy == []
