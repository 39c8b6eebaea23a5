"""Helpers for the routing tests: a repository of routed models, requests, and metric reading."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request
from tests.support import onnx_models

SCALES = {1: 1.0, 2: 2.0, 3: 3.0}
"""Version v of every routed test model answers y = SCALES[v] * x, so a response names its version."""


def routing_config(body: str) -> str:
    return f"max_batch_size = 8\n\n[routing]\n{body}\n"


def build_routing_repository(root: Path) -> Path:
    three = {v: onnx_models.scaled(s) for v, s in SCALES.items()}
    two = {v: three[v] for v in (1, 2)}
    onnx_models.write_versions(root, "split", two, routing_config('weights = { "1" = 90, "2" = 10 }'))
    onnx_models.write_versions(
        root, "sticky", two, routing_config('weights = { "1" = 50, "2" = 50 }\nsticky_key = "user_id"')
    )
    onnx_models.write_versions(
        root, "shadowed", three, routing_config('weights = { "1" = 100 }\nshadow = { version = 3, fraction = 1.0 }')
    )
    failing_shadow = {1: three[1], 2: onnx_models.reshape_by_five()}
    onnx_models.write_versions(
        root, "shadowfail", failing_shadow, routing_config('weights = { "1" = 100 }\nshadow = { version = 2 }')
    )
    onnx_models.write_versions(root, "plain", two, "max_batch_size = 8\n")
    return root


def request(
    model: str, value: float = 1.0, *, width: int = 1, version: str = "", **parameters: Any
) -> pb.ModelInferRequest:
    message = infer_request(model, {"x": np.full((1, width), value, dtype=np.float32)}, version=version)
    for key, parameter in parameters.items():
        if isinstance(parameter, bool):
            message.parameters[key].bool_param = parameter
        elif isinstance(parameter, int):
            message.parameters[key].int64_param = parameter
        elif isinstance(parameter, float):
            message.parameters[key].double_param = parameter
        else:
            message.parameters[key].string_param = parameter
    return message


async def served_versions(
    stub: pb_grpc.GRPCInferenceServiceStub,
    messages: Sequence[pb.ModelInferRequest],
    *,
    concurrency: int = 32,
    metadata: Sequence[tuple[str, str]] | None = None,
    scales: Mapping[int, float] = SCALES,
) -> list[int]:
    """Send `messages` (at most `concurrency` at once); the version each response names, checked by its values."""
    slots = asyncio.Semaphore(concurrency)

    async def one(message: pb.ModelInferRequest) -> int:
        async with slots:
            response = await stub.ModelInfer(message, metadata=metadata)
        version = int(response.model_version)
        sent = np.frombuffer(message.raw_input_contents[0], dtype=np.float32)
        got = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
        np.testing.assert_allclose(got, sent * scales[version])  # the values prove which version ran
        return version

    return list(await asyncio.gather(*(one(m) for m in messages)))


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Every sample of a metric, keyed by its sorted labels, parsed from the Prometheus text format."""
    found: dict[tuple[tuple[str, str], ...], float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


def labelled(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))
