"""Overload and memory bounds: bursts of calls, bytes in flight, message size and id length (docs/reliability.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.settings import load_settings
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.process import ServerProcess

MIB = 1024 * 1024


def repository(root: Path) -> Path:
    onnx_models.write_model(root, "tiny", onnx_models.identity("FP32"))
    onnx_models.write_model(root, "wide", onnx_models.identity("UINT8", ("batch", "n")), config="max_batch_size = 1\n")
    return root


async def fan_out(address: str, requests: list[pb.ModelInferRequest], channels: int) -> list[tuple[str, str]]:
    """Sends every request at once over `channels` connections; (status name, details) of each answer."""
    options = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.max_send_message_length", -1),
        ("grpc.max_receive_message_length", -1),
    ]
    opened = [grpc.aio.insecure_channel(address, options=options) for _ in range(channels)]
    try:
        stubs = [pb_grpc.GRPCInferenceServiceStub(channel) for channel in opened]
        await asyncio.gather(*(channel.channel_ready() for channel in opened))

        async def one(index: int, request: pb.ModelInferRequest) -> tuple[str, str]:
            try:
                await stubs[index % channels].ModelInfer(request, timeout=30)
            except grpc.aio.AioRpcError as error:
                return error.code().name, error.details() or ""
            return "OK", ""

        return await asyncio.gather(*(one(index, request) for index, request in enumerate(requests)))
    finally:
        await asyncio.gather(*(channel.close() for channel in opened))


def test_a_burst_of_calls_is_answered_or_refused_never_cancelled(tmp_path: Path) -> None:
    # Before: grpc-core's pending queue (1,000 soft / 3,000 hard) cancelled ~1,100 of these 4,000 calls.
    tiny = infer_request("tiny", {"INPUT0": np.ones((1, 3), np.float32)})
    with ServerProcess(repository(tmp_path), "--max-concurrent-rpcs", "20") as server:
        answers = asyncio.run(fan_out(server.address, [tiny] * 4000, channels=4))
    codes = Counter(code for code, _ in answers)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] > 0
    refusals = {details for code, details in answers if code == "RESOURCE_EXHAUSTED"}
    assert all("--max-concurrent-rpcs" in details for details in refusals), refusals


@pytest.fixture(scope="module")
def bounded_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    root = repository(tmp_path_factory.mktemp("overload"))
    args = ("--max-message-bytes", str(8 * MIB), "--max-inflight-bytes", str(16 * MIB))
    with ServerProcess(root, *args) as server:
        yield server


def wide(size: int, request_id: str = "") -> pb.ModelInferRequest:
    return infer_request("wide", {"INPUT0": np.zeros((1, size), np.uint8)}, id=request_id)


def test_request_bytes_in_flight_are_bounded(bounded_server: ServerProcess) -> None:
    # 24 requests of 6 MiB at once against a 16 MiB bound: at most two are held at a time.
    answers = asyncio.run(fan_out(bounded_server.address, [wide(6 * MIB)] * 24, channels=24))
    codes = Counter(code for code, _ in answers)
    assert set(codes) <= {"OK", "RESOURCE_EXHAUSTED"}, codes
    assert codes["OK"] > 0 and codes["RESOURCE_EXHAUSTED"] > 0, codes
    refusals = {details for code, details in answers if code == "RESOURCE_EXHAUSTED"}
    assert all("bytes of requests" in details and "--max-inflight-bytes" in details for details in refusals), refusals


def test_streamed_request_bytes_count_toward_the_same_bound(bounded_server: ServerProcess) -> None:
    # Before, stream requests were bounded only per stream (64 MiB each), so many streams held without bound.
    # Four streams of six 6 MiB requests against the 16 MiB bound: each request is answered or refused in-stream.
    async def stream(stub: pb_grpc.GRPCInferenceServiceStub, index: int) -> list[pb.ModelStreamInferResponse]:
        call = stub.ModelStreamInfer()
        for number in range(6):
            await call.write(wide(6 * MIB, request_id=f"{index}-{number}"))
        await call.done_writing()
        return [response async for response in call]

    async def run() -> list[pb.ModelStreamInferResponse]:
        options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
        async with grpc.aio.insecure_channel(bounded_server.address, options=options) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            answers = await asyncio.gather(*(stream(stub, index) for index in range(4)))
        return [response for answer in answers for response in answer]

    responses = asyncio.run(run())
    ids = sorted(response.infer_response.id for response in responses)
    assert ids == sorted(f"{index}-{number}" for index in range(4) for number in range(6))  # none lost
    refusals = [response.error_message for response in responses if response.error_message]
    assert refusals and len(refusals) < len(responses), len(refusals)
    assert all("bytes of requests" in text and "--max-inflight-bytes" in text for text in refusals), refusals


def test_a_message_over_the_limit_is_refused_by_size(bounded_server: ServerProcess) -> None:
    [(code, details)] = asyncio.run(fan_out(bounded_server.address, [wide(9 * MIB)], channels=1))
    assert code == "RESOURCE_EXHAUSTED"
    assert "larger than max" in details and str(8 * MIB) in details


def test_a_very_long_id_is_refused(bounded_server: ServerProcess) -> None:
    requests = [wide(8, "x" * 2000), wide(8, "é" * 600), wide(8, "x" * 1024)]
    [(long_code, long_details), (wide_code, _), (ok_code, _)] = asyncio.run(
        fan_out(bounded_server.address, requests, channels=1)
    )
    assert (long_code, wide_code, ok_code) == ("INVALID_ARGUMENT", "INVALID_ARGUMENT", "OK")
    assert "request id is 2000 bytes" in long_details and "1024" in long_details


def test_default_limits() -> None:
    grpc_settings = load_settings().grpc
    assert grpc_settings.max_message_bytes == 100 * MIB
    assert grpc_settings.max_inflight_bytes == 1024 * MIB
    assert grpc_settings.max_concurrent_rpcs == 4096
    assert grpc_settings.max_pending_rpcs == 65536
    with pytest.raises(ValueError, match="max_inflight_bytes"):
        load_settings({"grpc": {"max_inflight_bytes": 8 * MIB, "max_message_bytes": 16 * MIB}})


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_memory_comes_back_after_large_requests(tmp_path: Path) -> None:
    # Before: ONNX Runtime's arena kept each session's largest batch and malloc kept the rest, so after
    # 64, 64, 64 and 90 MiB requests RSS stayed about 260 MB above where it started.
    onnx_models.write_model(
        tmp_path, "wide", onnx_models.identity("UINT8", ("batch", "n")), config="max_batch_size = 1\n"
    )
    options = [("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)]
    with ServerProcess(tmp_path) as server, grpc.insecure_channel(server.address, options=options) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        stub.ModelInfer(wide(1024))
        idle = rss_mib(server.process.pid)
        for size in (64, 64, 64, 90):
            response = stub.ModelInfer(wide(size * MIB), timeout=60)
            assert len(response.raw_output_contents[0]) == size * MIB
        deadline = time.monotonic() + 10
        while (after := rss_mib(server.process.pid)) - idle > 64 and time.monotonic() < deadline:
            time.sleep(0.2)
    assert after - idle <= 64, f"RSS {idle:.0f} MiB before, {after:.0f} MiB 10 s after the large requests"
