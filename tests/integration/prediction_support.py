"""Helpers for the prediction telemetry tests: the `scorer` model's traffic, spread over connections."""

from __future__ import annotations

import asyncio

import grpc
import numpy as np
import numpy.typing as npt

from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.helpers import infer_request


async def send(
    stub: pb_grpc.GRPCInferenceServiceStub, values: npt.NDArray[np.float32], rows: int = 50, model: str = "scorer"
) -> None:
    """The values as requests of `rows` rows each, several in flight (so some share a batch)."""
    chunks = [values[i : i + rows].reshape(-1, 1) for i in range(0, len(values), rows)]
    await asyncio.gather(*(stub.ModelInfer(infer_request(model, {"x": chunk})) for chunk in chunks))


async def send_over_connections(address: str, values: npt.NDArray[np.float32], per_connection: int = 100) -> None:
    """One connection per `per_connection` values: SO_REUSEPORT spreads connections, so under --workers every
    worker answers some."""
    for start in range(0, len(values), per_connection):
        async with grpc.aio.insecure_channel(address) as channel:
            await send(pb_grpc.GRPCInferenceServiceStub(channel), values[start : start + per_connection])
