"""Both clients against the real server serving the example models.

Needs the ``example_server_address`` fixture from tests/conftest.py: "127.0.0.1:PORT"
of a server running in a background thread with models ``fraud`` (versions 1, 2)
and ``shapes`` (version 1).
"""

from __future__ import annotations

import socket
import time
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from clients import (
    AsyncInferenceClient,
    InferenceClient,
    InferenceServerError,
    ModelMetadata,
    RepositoryEntry,
    RetryPolicy,
    ServerMetadata,
    TensorMetadata,
)

FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.02, max_backoff=0.1, multiplier=2.0, jitter=0.0)
FAST_RETRY_TOTAL_SLEEP = 0.02 + 0.04


def fraud_features(rows: int = 3) -> npt.NDArray[np.float32]:
    return np.random.default_rng(7).standard_normal((rows, 12)).astype(np.float32)


def shapes_images(rows: int = 2) -> npt.NDArray[np.float32]:
    return np.random.default_rng(8).random((rows, 1, 16, 16), dtype=np.float32)


def check_fraud_outputs(outputs: dict[str, npt.NDArray[Any]], rows: int = 3) -> None:
    assert set(outputs) == {"scores", "label"}
    scores, label = outputs["scores"], outputs["label"]
    assert (scores.dtype, scores.shape) == (np.dtype(np.float32), (rows, 2))
    np.testing.assert_allclose(scores.sum(axis=1), np.ones(rows), rtol=1e-5)
    assert (label.dtype, label.shape) == (np.dtype(np.int64), (rows,))
    assert set(label.tolist()) <= {0, 1}


def check_shapes_outputs(outputs: dict[str, npt.NDArray[Any]], rows: int = 2) -> None:
    assert set(outputs) == {"probabilities", "class_id"}
    assert (outputs["probabilities"].dtype, outputs["probabilities"].shape) == (np.dtype(np.float32), (rows, 4))
    assert (outputs["class_id"].dtype, outputs["class_id"].shape) == (np.dtype(np.int64), (rows,))


def check_fraud_metadata(metadata: ModelMetadata) -> None:
    assert metadata.name == "fraud"
    assert {"1", "2"} <= set(metadata.versions)
    assert metadata.inputs == (TensorMetadata("features", "FP32", (-1, 12)),)
    assert {output.name: output for output in metadata.outputs} == {
        "scores": TensorMetadata("scores", "FP32", (-1, 2)),
        "label": TensorMetadata("label", "INT64", (-1,)),
    }


def check_repository(entries: list[RepositoryEntry]) -> None:
    assert all(isinstance(entry, RepositoryEntry) for entry in entries)
    assert {"1", "2"} <= {entry.version for entry in entries if entry.name == "fraud"}
    assert "shapes" in {entry.name for entry in entries}


def check_error(info: pytest.ExceptionInfo[InferenceServerError], code: grpc.StatusCode) -> None:
    assert info.value.code == code, str(info.value)
    assert info.value.attempts == 1
    assert code.name in str(info.value)
    assert info.value.details


@pytest.fixture
def closed_port_address() -> str:
    """An address nothing listens on: bind port 0, read it back, close it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"127.0.0.1:{port}"


@pytest.fixture
def client(example_server_address: str) -> Any:
    with InferenceClient(example_server_address, retry=FAST_RETRY, timeout=10.0) as sync_client:
        yield sync_client


# ------------------------------------------------------------------- sync


def test_health(client: InferenceClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("fraud")
    assert client.is_model_ready("fraud", "1")
    assert client.is_model_ready("fraud", 2)
    assert client.is_model_ready("shapes")


def test_metadata(client: InferenceClient) -> None:
    server = client.server_metadata()
    assert isinstance(server, ServerMetadata)
    assert server.name
    assert isinstance(server.extensions, tuple)
    check_fraud_metadata(client.model_metadata("fraud"))
    assert client.model_metadata("fraud", version=1).name == "fraud"
    shapes = client.model_metadata("shapes")
    assert shapes.inputs == (TensorMetadata("image", "FP32", (-1, 1, 16, 16)),)


def test_infer_all_outputs(client: InferenceClient) -> None:
    check_fraud_outputs(client.infer("fraud", {"features": fraud_features()}))
    check_shapes_outputs(client.infer("shapes", {"image": shapes_images()}))


def test_infer_requested_outputs(client: InferenceClient) -> None:
    outputs = client.infer("fraud", {"features": fraud_features()}, outputs=["label"])
    assert list(outputs) == ["label"]
    assert outputs["label"].shape == (3,)


def test_infer_pinned_versions_and_request_id(client: InferenceClient) -> None:
    features = fraud_features(rows=1)
    check_fraud_outputs(client.infer("fraud", {"features": features}, version="1", request_id="req-42"), rows=1)
    check_fraud_outputs(client.infer("fraud", {"features": features}, version=2), rows=1)


def test_infer_result_names_the_version_that_served(client: InferenceClient) -> None:
    features = fraud_features(rows=1)
    pinned = client.infer_result("fraud", {"features": features}, version=2, request_id="req-7")
    assert (pinned.model_name, pinned.model_version, pinned.request_id) == ("fraud", "2", "req-7")
    check_fraud_outputs(pinned.outputs, rows=1)
    # The bundled fraud model routes 90/10 with sticky_key = "user_id": one caller, one version.
    served = {
        client.infer_result("fraud", {"features": features}, parameters={"user_id": "alice"}).model_version
        for _ in range(10)
    }
    assert len(served) == 1 and served <= {"1", "2"}


def test_model_config_and_statistics(client: InferenceClient) -> None:
    assert client.model_config("fraud").name == "fraud"
    client.infer("fraud", {"features": fraud_features()}, version="1")
    stats = client.model_statistics("fraud")
    assert stats
    assert {entry.name for entry in stats} == {"fraud"}


def test_repository_index(client: InferenceClient) -> None:
    check_repository(client.repository_index())
    check_repository(client.repository_index(ready_only=True))


def test_unknown_model_is_not_found(client: InferenceClient) -> None:
    with pytest.raises(InferenceServerError) as info:
        client.infer("no-such-model", {"features": fraud_features()})
    check_error(info, grpc.StatusCode.NOT_FOUND)


def test_wrong_input_name_is_invalid_argument(client: InferenceClient) -> None:
    with pytest.raises(InferenceServerError) as info:
        client.infer("fraud", {"not_features": fraud_features()})
    check_error(info, grpc.StatusCode.INVALID_ARGUMENT)


def test_unreachable_server_is_unavailable_after_retries(closed_port_address: str) -> None:
    started = time.monotonic()
    client = InferenceClient(closed_port_address, retry=FAST_RETRY, timeout=5.0)
    with client, pytest.raises(InferenceServerError) as info:
        client.is_server_live()
    assert (info.value.code, info.value.attempts) == (grpc.StatusCode.UNAVAILABLE, 3)
    assert time.monotonic() - started >= FAST_RETRY_TOTAL_SLEEP


# ------------------------------------------------------------------ async


async def test_async_health_and_metadata(example_server_address: str) -> None:
    async with AsyncInferenceClient(example_server_address, retry=FAST_RETRY, timeout=10.0) as client:
        assert await client.is_server_live()
        assert await client.is_server_ready()
        assert await client.is_model_ready("fraud", "2")
        assert isinstance(await client.server_metadata(), ServerMetadata)
        check_fraud_metadata(await client.model_metadata("fraud"))
        check_repository(await client.repository_index())


async def test_async_infer(example_server_address: str) -> None:
    async with AsyncInferenceClient(example_server_address, retry=FAST_RETRY, timeout=10.0) as client:
        check_fraud_outputs(await client.infer("fraud", {"features": fraud_features()}))
        check_shapes_outputs(await client.infer("shapes", {"image": shapes_images()}, version="1"))
        subset = await client.infer(
            "fraud", {"features": fraud_features()}, outputs=["scores"], version="1", request_id="req-a"
        )
        assert list(subset) == ["scores"]
        result = await client.infer_result("fraud", {"features": fraud_features()}, version=1)
        assert result.model_version == "1" and set(result.outputs) == {"scores", "label"}


async def test_async_errors(example_server_address: str) -> None:
    async with AsyncInferenceClient(example_server_address, retry=FAST_RETRY, timeout=10.0) as client:
        with pytest.raises(InferenceServerError) as not_found:
            await client.infer("no-such-model", {"features": fraud_features()})
        with pytest.raises(InferenceServerError) as invalid:
            await client.infer("fraud", {"not_features": fraud_features()})
    check_error(not_found, grpc.StatusCode.NOT_FOUND)
    check_error(invalid, grpc.StatusCode.INVALID_ARGUMENT)


async def test_async_unreachable_server_is_unavailable_after_retries(closed_port_address: str) -> None:
    started = time.monotonic()
    async with AsyncInferenceClient(closed_port_address, retry=FAST_RETRY, timeout=5.0) as client:
        with pytest.raises(InferenceServerError) as info:
            await client.is_server_live()
    assert (info.value.code, info.value.attempts) == (grpc.StatusCode.UNAVAILABLE, 3)
    assert time.monotonic() - started >= FAST_RETRY_TOTAL_SLEEP
