"""Admin RPCs naming models that do not exist keep nothing per name, however many names a client makes up.

Before, the repository kept an asyncio.Lock for every name ever asked for: 1,000 unloads of distinct
100 kB names added ~100 MB. Unknown names are now refused (NOT_FOUND) before any per-name state exists,
and per-name locks live only while a change to that name runs or waits.
"""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import Awaitable
from pathlib import Path

import grpc
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.errors import ModelNotFoundError
from tests.support import onnx_models
from tests.support.servers import running_app

NAME_BYTES = 10_000
NAMES = 1_000  # each is loaded and unloaded: 2,000 admin calls
CONCURRENCY = 50
GROWTH_BOUND = 2 * 1024 * 1024
"""Keeping the long names alone would retain NAMES / 2 x NAME_BYTES = 5 MB; what grpc and the loop cache stays below."""

# A name that does not exist may also be refused as INVALID_ARGUMENT by name validation at the edge.
REFUSED = {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}


def made_up(index: int) -> str:
    """Distinct names: 10 kB ones, and every other one short enough to pass name checks and reach the repository."""
    return f"{index:06d}-" + "n" * (NAME_BYTES if index % 2 == 0 else 200)


async def refusal(call: Awaitable[object]) -> tuple[grpc.StatusCode, int]:
    """The status code and message length of an admin call that must fail."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error.code(), len(error.details() or "")
    raise AssertionError("an admin call on a made-up name succeeded")


async def flood(stub: pb_grpc.GRPCInferenceServiceStub, indices: range) -> list[tuple[grpc.StatusCode, int]]:
    """Load and unload every made-up name, CONCURRENCY names at a time."""
    results: list[tuple[grpc.StatusCode, int]] = []
    for start in range(indices.start, indices.stop, CONCURRENCY):
        names = [made_up(i) for i in range(start, min(start + CONCURRENCY, indices.stop))]
        calls = [stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name)) for name in names]
        calls += [stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name=name)) for name in names]
        results += await asyncio.gather(*(refusal(call) for call in calls))
    return results


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    onnx_models.write_model(tmp_path, "good", onnx_models.identity("FP32"))
    return tmp_path


async def test_many_made_up_names_leave_memory_and_the_lock_table_unchanged(repository: Path) -> None:
    async with running_app(repository) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            await flood(stub, range(0, 2 * CONCURRENCY))  # warm-up: caches that grpc and the loop fill once
            gc.collect()
            tracemalloc.start()
            try:
                before = tracemalloc.get_traced_memory()[0]
                results = await flood(stub, range(2 * CONCURRENCY, 2 * CONCURRENCY + NAMES))
                gc.collect()
                grown = tracemalloc.get_traced_memory()[0] - before
            finally:
                tracemalloc.stop()
        assert len(results) == 2 * NAMES
        assert {code for code, _ in results} <= REFUSED
        assert max(length for _, length in results) < 1_000  # the name is cut in the message
        assert app.repository.names_in_progress == 0
        assert [record.name for record in app.repository.records()] == ["good"]
        assert grown < GROWTH_BOUND, f"{NAMES} made-up names kept {grown / 1e6:.1f} MB"
        assert app.repository.is_ready("good")


async def test_an_unknown_name_is_not_found_with_the_name_cut(repository: Path) -> None:
    async with running_app(repository) as app:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            for call in (
                stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="nosuchmodel")),
                stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="nosuchmodel")),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await call
                assert refused.value.code() == grpc.StatusCode.NOT_FOUND
                assert "'nosuchmodel'" in str(refused.value.details())
        # The repository itself, below any validation at the edge: a long name is cut in the message.
        long_name = made_up(0)
        for change in (app.repository.load, app.repository.unload, app.repository.reroute):
            with pytest.raises(ModelNotFoundError) as not_found:
                await change(long_name)
            message = str(not_found.value)
            assert len(message) < 600 and f"({len(long_name.encode())} bytes)" in message
        assert app.repository.names_in_progress == 0
