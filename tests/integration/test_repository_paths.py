"""The repository's path rule on a real server: model files that resolve outside the repository are refused.

Each refused model or version is UNAVAILABLE with a reason naming the path and the flag, and every other
model keeps serving; --allow-external-model-files makes the symlinked ones load.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from server.confinement import ALLOW_FLAG
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.servers import local_settings

FLAG = "--allow-external-model-files"


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(repository, a directory beside it): good models, and one model per way of reaching outside."""
    repository, outside = tmp_path / "models", tmp_path / "elsewhere"
    model = onnx_models.identity("FP32")
    onnx_models.write_model(repository, "good", model)
    onnx_models.write_model(outside, "stray", model)  # elsewhere/stray/1/model.onnx
    stray = outside / "stray"
    onnx_models.write_model(repository, "dotdot", model, config='model_filename = "../../../elsewhere/x.onnx"\n')
    onnx_models.write_model(repository, "absolute", model, config=f'model_filename = "{stray / "1" / "model.onnx"}"\n')
    (repository / "linkedversion").mkdir()
    (repository / "linkedversion" / "1").symlink_to(stray / "1")
    (repository / "linkedfile" / "1").mkdir(parents=True)
    (repository / "linkedfile" / "1" / "model.onnx").symlink_to(stray / "1" / "model.onnx")
    (repository / "linkedmodel").symlink_to(stray)
    # Links that stay inside the repository keep working.
    (repository / "insidefile" / "1").mkdir(parents=True)
    (repository / "insidefile" / "1" / "model.onnx").symlink_to(repository / "good" / "1" / "model.onnx")
    (repository / "insideversion").mkdir()
    (repository / "insideversion" / "1").symlink_to(Path("..") / "good" / "1")
    return repository, outside


@asynccontextmanager
async def serving(repository: Path, allow: bool) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    """A real server on `repository` (with or without the allow flag) and a stub connected to it."""
    settings = local_settings(repository).model_copy(update={"allow_external_model_files": allow})
    app = App(settings, CollectorRegistry())
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        await app.stop(grace_s=1.0)


async def index_of(stub: pb_grpc.GRPCInferenceServiceStub) -> dict[tuple[str, str], tuple[str, str]]:
    response = await stub.RepositoryIndex(pb.RepositoryIndexRequest())
    return {(m.name, m.version): (m.state, m.reason) for m in response.models}


async def serves(stub: pb_grpc.GRPCInferenceServiceStub, model: str) -> bool:
    x = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    response = await stub.ModelInfer(infer_request(model, {"INPUT0": x}))
    return np.array_equal(np.frombuffer(response.raw_output_contents[0], dtype=np.float32), x.ravel())


async def test_files_outside_the_repository_are_refused_and_the_rest_serve(layout: tuple[Path, Path]) -> None:
    repository, outside = layout
    async with serving(repository, allow=False) as stub:
        index = await index_of(stub)
        for ready in ("good", "insidefile", "insideversion"):
            assert index[(ready, "1")][0] == "READY", index[(ready, "1")]
            assert await serves(stub, ready)
        for name in ("dotdot", "absolute"):
            state, reason = index[(name, "")]
            assert state == "UNAVAILABLE" and "model_filename" in reason and FLAG in reason, reason
        state, reason = index[("linkedmodel", "")]
        assert state == "UNAVAILABLE", reason
        assert str(repository / "linkedmodel") in reason and str(outside / "stray") in reason and ALLOW_FLAG in reason
        for name in ("linkedversion", "linkedfile"):
            state, reason = index[(name, "1")]
            assert state == "UNAVAILABLE", reason
            assert str(repository / name / "1" / "model.onnx") in reason and ALLOW_FLAG in reason, reason
            assert str(outside / "stray" / "1" / "model.onnx") in reason
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ModelInfer(infer_request("linkedfile", {"INPUT0": np.zeros((1, 3), np.float32)}))
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE and ALLOW_FLAG in str(refused.value.details())


async def test_the_allow_flag_loads_symlinked_models_but_not_bad_filenames(layout: tuple[Path, Path]) -> None:
    repository, _ = layout
    async with serving(repository, allow=True) as stub:
        index = await index_of(stub)
        for name in ("good", "linkedversion", "linkedfile", "linkedmodel", "insidefile"):
            assert index[(name, "1")][0] == "READY", index[(name, "1")]
            assert await serves(stub, name)
        for name in ("dotdot", "absolute"):
            assert index[(name, "")][0] == "UNAVAILABLE"
