"""Which artifact serves: inference_model_info and ModelConfig carry the file's sha256, and follow a reload."""

from __future__ import annotations

import hashlib
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.integration.routing_support import samples
from tests.support import onnx_models
from tests.support.servers import running_app


def _info(registry: CollectorRegistry, sha256: str) -> float | None:
    """The value of the info series that names `sha256`, or None when there is none."""
    found = [
        value for labels, value in samples(registry, "inference_model_info").items() if ("sha256", sha256) in labels
    ]
    return found[0] if found else None


async def test_the_served_file_is_named_by_its_sha256(tmp_path: Path) -> None:
    onnx_models.write_model(tmp_path, "m", onnx_models.scaled(1.0))
    path = tmp_path / "m" / "1" / "model.onnx"
    first = hashlib.sha256(path.read_bytes()).hexdigest()
    async with running_app(tmp_path) as app:
        assert _info(app.registry, first) == 1
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            config = (await stub.ModelConfig(pb.ModelConfigRequest(name="m"))).config
            assert config.parameters["sha256"].string_value == first
            assert config.parameters["producer"].string_value == "tests"

            path.write_bytes(onnx_models.scaled(2.0))  # a new file for version 1, then a reload
            second = hashlib.sha256(path.read_bytes()).hexdigest()
            await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"))
            assert (_info(app.registry, first), _info(app.registry, second)) == (0, 1)
            config = (await stub.ModelConfig(pb.ModelConfigRequest(name="m"))).config
            assert config.parameters["sha256"].string_value == second
