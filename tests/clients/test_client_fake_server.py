"""Both clients against a scripted in-process servicer: what goes on the wire, retries, limits.

The servicer counts every request it receives, so retry behaviour is checked
from the server's side. Tests against the real server live in test_client_integration.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import numpy as np
import pytest

from clients import AsyncInferenceClient, InferenceClient, InferenceServerError, RetryPolicy
from clients._convert import build_infer_request
from oip import codec
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc

FAST = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.02, jitter=0.0)
FEATURES = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 12)


class ScriptedServicer(pb_grpc.GRPCInferenceServiceServicer):  # type: ignore[misc, unused-ignore]
    """Records requests; fails with the queued statuses first; answers ModelInfer with typed contents."""

    def __init__(self) -> None:
        self.requests: list[Any] = []
        self.failures: list[grpc.StatusCode] = []
        self.delay = 0.0
        self.infer_reply = pb.ModelInferResponse(model_name="m", model_version="1")
        scores = self.infer_reply.outputs.add(name="scores", datatype="FP32", shape=[2, 2])
        scores.contents.fp32_contents.extend([0.25, 0.75, 1.0, 0.0])
        label = self.infer_reply.outputs.add(name="label", datatype="BYTES", shape=[2])
        label.contents.bytes_contents.extend([b"fraud", b"ok"])

    def _receive(self, request: Any, context: Any) -> None:
        self.requests.append(request)
        if self.failures:
            code = self.failures.pop(0)
            context.abort(code, f"scripted {code.name}")
        time.sleep(self.delay)

    def ServerLive(self, request: Any, context: Any) -> pb.ServerLiveResponse:
        self._receive(request, context)
        return pb.ServerLiveResponse(live=True)

    def ModelInfer(self, request: Any, context: Any) -> pb.ModelInferResponse:
        self._receive(request, context)
        return self.infer_reply

    def RepositoryModelLoad(self, request: Any, context: Any) -> pb.RepositoryModelLoadResponse:
        self._receive(request, context)
        return pb.RepositoryModelLoadResponse()

    def RepositoryModelUnload(self, request: Any, context: Any) -> pb.RepositoryModelUnloadResponse:
        self._receive(request, context)
        return pb.RepositoryModelUnloadResponse()


@pytest.fixture
def servicer() -> ScriptedServicer:
    return ScriptedServicer()


@pytest.fixture
def address(servicer: ScriptedServicer) -> Iterator[str]:
    limit = [("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)]
    server = grpc.server(ThreadPoolExecutor(max_workers=4), options=limit)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)  # type: ignore[no-untyped-call, unused-ignore]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def expect_typed_reply(outputs: dict[str, Any]) -> None:
    np.testing.assert_array_equal(outputs["scores"], np.array([[0.25, 0.75], [1.0, 0.0]], dtype=np.float32))
    assert outputs["label"].tolist() == [b"fraud", b"ok"]


INFER_ARGS: dict[str, Any] = {
    "version": 2,
    "outputs": ["scores", "label"],
    "request_id": "req-1",
    "parameters": {"priority": 5, "sticky": "user-9"},
}


# ------------------------------------------------------------------- sync


def test_infer_sends_raw_inputs_and_decodes_typed_outputs(servicer: ScriptedServicer, address: str) -> None:
    with InferenceClient(address, retry=FAST) as client:
        expect_typed_reply(client.infer("m", {"features": FEATURES}, **INFER_ARGS))
    assert servicer.requests == [build_infer_request("m", {"features": FEATURES}, **INFER_ARGS)]
    sent = servicer.requests[0]
    np.testing.assert_array_equal(codec.raw_to_array(sent.raw_input_contents[0], "FP32", [2, 12]), FEATURES)


def test_unavailable_then_success_is_retried(servicer: ScriptedServicer, address: str) -> None:
    servicer.failures = [grpc.StatusCode.UNAVAILABLE] * 2
    with InferenceClient(address, retry=FAST) as client:
        assert client.is_server_live() is True
    assert len(servicer.requests) == 3


def test_unavailable_stops_after_max_attempts(servicer: ScriptedServicer, address: str) -> None:
    servicer.failures = [grpc.StatusCode.UNAVAILABLE] * 5
    with InferenceClient(address, retry=FAST) as client, pytest.raises(InferenceServerError) as info:
        client.infer("m", {"features": FEATURES})
    assert (info.value.code, info.value.attempts, len(servicer.requests)) == (grpc.StatusCode.UNAVAILABLE, 3, 3)
    assert info.value.details == "scripted UNAVAILABLE"


@pytest.mark.parametrize("code", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.RESOURCE_EXHAUSTED])
def test_other_statuses_are_not_retried(servicer: ScriptedServicer, address: str, code: grpc.StatusCode) -> None:
    servicer.failures = [code]
    with InferenceClient(address, retry=FAST) as client, pytest.raises(InferenceServerError) as info:
        client.infer("m", {"features": FEATURES})
    assert (info.value.code, info.value.attempts, len(servicer.requests)) == (code, 1, 1)
    assert str(info.value) == f"{code.name}: scripted {code.name}"


def test_per_call_timeout_is_a_deadline_and_not_retried(servicer: ScriptedServicer, address: str) -> None:
    servicer.delay = 0.3
    with InferenceClient(address, retry=FAST) as client, pytest.raises(InferenceServerError) as info:
        client.infer("m", {"features": FEATURES}, timeout=0.05)
    assert (info.value.code, len(servicer.requests)) == (grpc.StatusCode.DEADLINE_EXCEEDED, 1)


def test_client_default_timeout_applies(servicer: ScriptedServicer, address: str) -> None:
    servicer.delay = 0.3
    with InferenceClient(address, retry=FAST, timeout=0.05) as client, pytest.raises(InferenceServerError) as info:
        client.is_server_live()
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED


def test_load_and_unload(servicer: ScriptedServicer, address: str) -> None:
    with InferenceClient(address) as client:
        client.load_model("fraud")
        client.unload_model("shapes")
    assert servicer.requests == [
        pb.RepositoryModelLoadRequest(model_name="fraud"),
        pb.RepositoryModelUnloadRequest(model_name="shapes"),
    ]


def test_large_messages_use_the_raised_limit(servicer: ScriptedServicer, address: str) -> None:
    big = np.ones((3, 512, 1024), dtype=np.float32)  # 6 MiB, past the 4 MiB gRPC receive default
    servicer.infer_reply = pb.ModelInferResponse(raw_output_contents=[codec.array_to_raw(big)])
    servicer.infer_reply.outputs.add(name="big", datatype="FP32", shape=big.shape)
    with InferenceClient(address) as client:
        assert client.infer("m", {"x": big})["big"].shape == big.shape
    with InferenceClient(address, max_message_bytes=1 << 20) as client, pytest.raises(InferenceServerError) as info:
        client.infer("m", {"x": FEATURES})
    assert info.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED


# ------------------------------------------------------------------ async


async def test_async_infer_round_trip(servicer: ScriptedServicer, address: str) -> None:
    async with AsyncInferenceClient(address, retry=FAST) as client:
        expect_typed_reply(await client.infer("m", {"features": FEATURES}, **INFER_ARGS))
    assert servicer.requests == [build_infer_request("m", {"features": FEATURES}, **INFER_ARGS)]


async def test_async_unavailable_then_success_is_retried(servicer: ScriptedServicer, address: str) -> None:
    servicer.failures = [grpc.StatusCode.UNAVAILABLE] * 2
    async with AsyncInferenceClient(address, retry=FAST) as client:
        assert await client.is_server_live() is True
    assert len(servicer.requests) == 3


async def test_async_not_found_is_not_retried(servicer: ScriptedServicer, address: str) -> None:
    servicer.failures = [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.NOT_FOUND]
    async with AsyncInferenceClient(address, retry=FAST) as client:
        with pytest.raises(InferenceServerError) as info:
            await client.infer("m", {"features": FEATURES})
    assert (info.value.code, info.value.attempts, len(servicer.requests)) == (grpc.StatusCode.NOT_FOUND, 1, 1)


async def test_async_deadline(servicer: ScriptedServicer, address: str) -> None:
    servicer.delay = 0.3
    async with AsyncInferenceClient(address, retry=FAST) as client:
        with pytest.raises(InferenceServerError) as info:
            await client.infer("m", {"features": FEATURES}, timeout=0.05)
    assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
