"""Repository RPCs on a real server: broken models beside good ones, load/unload/reload at run time."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2 as pb
from tests.integration.helpers import infer_request, stub_for
from tests.support import onnx_models


def index_of(response: pb.RepositoryIndexResponse) -> dict[tuple[str, str], tuple[str, str]]:
    return {(m.name, m.version): (m.state, m.reason) for m in response.models}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    onnx_models.write_model(tmp_path, "good", onnx_models.identity("FP32"), versions=(1, 2))
    onnx_models.write_model(tmp_path, "other", onnx_models.add_sub())
    # Broken in every way a repository can be: garbage file, bad config, no versions, half-broken versions.
    onnx_models.write_model(tmp_path, "corrupt", b"this is not an onnx file")
    onnx_models.write_model(tmp_path, "badconfig", onnx_models.identity("FP32"), config="max_batch_sise = 4\n")
    onnx_models.write_model(tmp_path, "badtoml", onnx_models.identity("FP32"), config="max_batch_size = [\n")
    (tmp_path / "empty").mkdir()
    onnx_models.write_model(tmp_path, "half", onnx_models.identity("FP32"), versions=(1,))
    (tmp_path / "half" / "2").mkdir()  # version 2 has no model.onnx
    onnx_models.write_model(tmp_path, "fixedbatch", onnx_models.fixed_shape(), config="max_batch_size = 4\n")
    return tmp_path


async def test_broken_models_are_unavailable_with_reasons_and_the_rest_serve(repository: Path) -> None:
    async with stub_for(repository) as stub:
        index = index_of(await stub.RepositoryIndex(pb.RepositoryIndexRequest()))
        assert index[("good", "1")] == ("READY", "")
        assert index[("good", "2")] == ("READY", "")
        assert index[("other", "1")] == ("READY", "")
        assert index[("half", "1")] == ("READY", "")
        state, reason = index[("half", "2")]
        assert state == "UNAVAILABLE" and "does not exist" in reason
        state, reason = index[("corrupt", "1")]
        assert state == "UNAVAILABLE" and "onnxruntime could not load" in reason
        state, reason = index[("badconfig", "")]
        assert state == "UNAVAILABLE" and "max_batch_sise" in reason
        state, reason = index[("badtoml", "")]
        assert state == "UNAVAILABLE" and "not valid TOML" in reason
        state, reason = index[("empty", "")]
        assert state == "UNAVAILABLE" and "no numbered version" in reason
        state, reason = index[("fixedbatch", "1")]
        assert state == "UNAVAILABLE" and "dynamic first dimension" in reason

        ready_only = index_of(await stub.RepositoryIndex(pb.RepositoryIndexRequest(ready=True)))
        assert set(ready_only) == {("good", "1"), ("good", "2"), ("other", "1"), ("half", "1")}

        # Strict readiness (the default): the server is not ready while models failed, yet the good ones serve.
        assert not (await stub.ServerReady(pb.ServerReadyRequest())).ready
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="corrupt"))).ready
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="half", version="2"))).ready
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(infer_request("corrupt", {"INPUT0": np.zeros((1, 3), np.float32)}))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "onnxruntime could not load" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(infer_request("half", {"INPUT0": np.zeros((1, 3), np.float32)}, version="2"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        await stub.ModelInfer(infer_request("good", {"INPUT0": np.zeros((1, 3), np.float32)}))


async def test_unload_then_load_at_run_time(repository: Path) -> None:
    data = {"INPUT0": np.ones((1, 3), np.float32)}
    async with stub_for(repository) as stub:
        await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="good"))
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="good"))).ready
        index = index_of(await stub.RepositoryIndex(pb.RepositoryIndexRequest()))
        assert index[("good", "1")] == ("UNAVAILABLE", "unloaded")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(infer_request("good", data))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        # Other models are untouched.
        await stub.ModelInfer(infer_request("other", {k: np.zeros((1, 16), np.int32) for k in ("INPUT0", "INPUT1")}))

        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="good"))
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="good", version="2"))).ready
        response = await stub.ModelInfer(infer_request("good", data))
        assert response.model_version == "2"


async def test_reload_picks_up_a_new_version_and_a_fixed_model(repository: Path) -> None:
    async with stub_for(repository) as stub:
        shutil.copytree(repository / "good" / "2", repository / "good" / "3")
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="good"))
        metadata = await stub.ModelMetadata(pb.ModelMetadataRequest(name="good"))
        assert list(metadata.versions) == ["1", "2", "3"]
        response = await stub.ModelInfer(infer_request("good", {"INPUT0": np.ones((1, 3), np.float32)}))
        assert response.model_version == "3"

        (repository / "corrupt" / "1" / "model.onnx").write_bytes(onnx_models.identity("FP32"))
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="corrupt"))
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="corrupt"))).ready

        # A model directory added after start-up can be loaded too.
        onnx_models.write_model(repository, "newcomer", onnx_models.identity("INT64"))
        index = index_of(await stub.RepositoryIndex(pb.RepositoryIndexRequest()))
        assert index[("newcomer", "")] == ("UNAVAILABLE", "not loaded")
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="newcomer"))
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="newcomer"))).ready


async def test_failed_reload_keeps_the_old_versions_serving(repository: Path) -> None:
    async with stub_for(repository) as stub:
        (repository / "good" / "config.toml").write_text("unknown_key = 1\n")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="good"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "unknown_key" in (caught.value.details() or "")
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="good"))).ready
        await stub.ModelInfer(infer_request("good", {"INPUT0": np.ones((1, 3), np.float32)}))


async def test_load_errors(repository: Path) -> None:
    async with stub_for(repository) as stub:
        for name in ("does_not_exist", "../etc", "a/b"):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name=name))
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND, name
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="does_not_exist"))
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        request = pb.RepositoryModelLoadRequest(model_name="good")
        request.parameters["config"].string_param = "{}"
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.RepositoryModelLoad(request)
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_loading_a_model_does_not_pause_inference_on_others(repository: Path) -> None:
    onnx_models.write_model(repository, "slow_to_load", onnx_models.identity("FP32"), versions=range(1, 9))
    data = {"INPUT0": np.ones((1, 3), np.float32)}
    async with stub_for(repository) as stub:
        load = asyncio.ensure_future(stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="slow_to_load")))
        served = 0
        while not load.done():
            await stub.ModelInfer(infer_request("good", data))
            served += 1
        await load
        assert served >= 1
        assert (await stub.ModelReady(pb.ModelReadyRequest(name="slow_to_load", version="8"))).ready


async def test_in_flight_requests_finish_across_an_unload(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "slow", onnx_models.slow_matmul())
    x = np.random.default_rng(0).random((1, 2500), dtype=np.float32)  # a few hundred ms per request
    async with stub_for(tmp_path) as stub:
        in_flight = [asyncio.ensure_future(stub.ModelInfer(infer_request("slow", {"x": x}))) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert not any(task.done() for task in in_flight), "requests finished before the unload; make them slower"
        await stub.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="slow"))
        responses = await asyncio.gather(*in_flight)
        assert all(r.model_name == "slow" for r in responses)
        assert not (await stub.ModelReady(pb.ModelReadyRequest(name="slow"))).ready
