"""SIGTERM on a real server process: nothing accepted is lost, streams end promptly, the drain delay holds readiness.

Every request a client sends around a SIGTERM either gets its answer or UNAVAILABLE (which clients retry),
never CANCELLED; open streams end after their in-flight requests instead of holding shutdown for the grace
period; with --drain-delay the server reports not ready at once while it still serves.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.retry import RetryPolicy
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.process import ServerProcess, http_ready_status

#: Each round: a steady load of concurrent requests, SIGTERM in the middle of it.
ROUNDS = 5
SENDERS = 12
RETRY = RetryPolicy()
#: A few milliseconds of work per request (slow_matmul is O(n^3)), so that some are always in flight.
WORK = np.random.default_rng(0).random((1, 250), dtype=np.float32)
#: Roughly half a second per request: still in flight when SIGTERM arrives.
SLOW = np.random.default_rng(1).random((1, 3000), dtype=np.float32)


def _repository(root: Path) -> Path:
    onnx_models.write_model(root, "slow", onnx_models.slow_matmul())
    return root


def _server(root: Path, *args: str) -> ServerProcess:
    return ServerProcess(root, "--graceful-shutdown", "30", "--intra-op-threads", "1", *args).start()


async def _send_until_refused(address: str, server: ServerProcess, outcomes: Counter[str]) -> None:
    """Send requests back to back on one channel, counting each outcome, until the server has exited or refused
    three tries in a row (retried after 0.05 s and 0.1 s, like clients.RetryPolicy; then a client goes elsewhere)."""
    refused = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        while server.process.poll() is None and refused < RETRY.max_attempts:
            try:
                response = await stub.ModelInfer(infer_request("slow", {"x": WORK}), timeout=20)
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1
                refused += 1
                await asyncio.sleep(RETRY.initial_backoff * 2 ** (refused - 1))
                continue
            assert response.model_name == "slow"
            outcomes["OK"] += 1
            refused = 0


async def test_sigterm_under_load_answers_every_request_or_refuses_it_with_unavailable(tmp_path: Path) -> None:
    repository = _repository(tmp_path)
    for round_ in range(ROUNDS):
        server = _server(repository)
        try:
            outcomes: Counter[str] = Counter()
            senders = [
                asyncio.create_task(_send_until_refused(server.address, server, outcomes)) for _ in range(SENDERS)
            ]
            await asyncio.sleep(0.3)
            assert outcomes["OK"] > 0, outcomes
            server.terminate()
            code = await asyncio.to_thread(server.wait, 40)
            await asyncio.wait_for(asyncio.gather(*senders), 30)
        finally:
            server.stop()
        assert code == 0, f"round {round_}: exit code {code}"
        assert set(outcomes) <= {"OK", "UNAVAILABLE"}, f"round {round_}: {outcomes}"
        assert outcomes["UNAVAILABLE"] > 0, f"round {round_}: {outcomes}"  # the load went on past the drain


async def test_streams_end_after_their_in_flight_requests_and_do_not_hold_shutdown(tmp_path: Path) -> None:
    server = _server(_repository(tmp_path))
    forever = asyncio.Event()  # the clients never half-close their streams

    async def busy() -> AsyncIterator[pb.ModelInferRequest]:
        yield infer_request("slow", {"x": SLOW}, id="in-flight")
        await forever.wait()

    async def idle() -> AsyncIterator[pb.ModelInferRequest]:
        await forever.wait()
        yield pb.ModelInferRequest()  # pragma: no cover

    async def read_all(
        call: grpc.aio.StreamStreamCall[pb.ModelInferRequest, pb.ModelStreamInferResponse],
    ) -> tuple[list[pb.ModelStreamInferResponse], grpc.StatusCode]:
        responses = []
        try:
            async for response in call:
                responses.append(response)
        except grpc.aio.AioRpcError as error:
            return responses, error.code()
        return responses, await call.code()

    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            streams = [asyncio.create_task(read_all(stub.ModelStreamInfer(make()))) for make in (busy, idle)]
            deadline = time.monotonic() + 20
            while server.metric("inference_pending_requests", model="slow") < 1:
                assert time.monotonic() < deadline, "the streamed request never reached the server"
                await asyncio.sleep(0.01)
            terminated = time.monotonic()
            server.terminate()
            (busy_responses, busy_code), (idle_responses, idle_code) = await asyncio.wait_for(
                asyncio.gather(*streams), 20
            )
            code = await asyncio.to_thread(server.wait, 20)
            took = time.monotonic() - terminated
            forever.set()
    finally:
        server.stop()
    assert code == 0
    assert took < 5, f"shutdown took {took:.1f} s of its 30 s grace period"
    assert [(r.infer_response.id, r.error_message) for r in busy_responses] == [("in-flight", "")]
    assert busy_code == grpc.StatusCode.UNAVAILABLE
    assert idle_responses == [] and idle_code == grpc.StatusCode.UNAVAILABLE


async def test_drain_delay_reports_not_ready_while_still_serving(tmp_path: Path) -> None:
    server = _server(_repository(tmp_path), "--drain-delay", "1.5")
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            assert (await stub.ServerReady(pb.ServerReadyRequest())).ready
            terminated = time.monotonic()
            server.terminate()
            await asyncio.sleep(0.2)
            assert await asyncio.to_thread(http_ready_status, server.http_port) == 503
            assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
            checked = await health.Check(health_pb2.HealthCheckRequest(service=""))
            assert checked.status == health_pb2.HealthCheckResponse.NOT_SERVING
            served = 0
            while time.monotonic() - terminated < 1.2:  # inside the delay: served as usual
                response = await stub.ModelInfer(infer_request("slow", {"x": WORK}), timeout=5)
                assert response.model_name == "slow"
                served += 1
            assert served > 0
            assert server.process.poll() is None
            code = await asyncio.to_thread(server.wait, 20)
            took = time.monotonic() - terminated
    finally:
        server.stop()
    assert code == 0
    assert took >= 1.5


@pytest.mark.parametrize("workers", [2])
async def test_workers_forward_sigterm_and_drain(tmp_path: Path, workers: int) -> None:
    server = _server(_repository(tmp_path), "--workers", str(workers), "--drain-delay", "0.5")
    try:
        outcomes: Counter[str] = Counter()
        senders = [asyncio.create_task(_send_until_refused(server.address, server, outcomes)) for _ in range(4)]
        await asyncio.sleep(0.3)
        server.terminate()
        await asyncio.sleep(0.2)
        assert await asyncio.to_thread(http_ready_status, server.http_port) == 503
        code = await asyncio.to_thread(server.wait, 40)
        await asyncio.wait_for(asyncio.gather(*senders), 30)
    finally:
        server.stop()
    assert code == 0
    assert outcomes["OK"] > 0 and set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
