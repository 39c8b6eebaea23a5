"""Routing under `--workers 2`: identical decisions in every worker, changes that reach every worker before
the call returns, loads and unloads that apply everywhere, and a judge that sees all workers' traffic."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from oip.v1 import routing_admin_pb2 as admin_pb
from oip.v1 import routing_admin_pb2_grpc as admin_grpc
from tests.integration.routing_support import request, routing_config
from tests.support import onnx_models
from tests.support.process import ServerProcess

CONNECTIONS = 16
#: A private subchannel pool gives every channel its own TCP connection, so the kernel spreads them over workers.
OWN_CONNECTION = [("grpc.use_local_subchannel_pool", 1)]
FAST_JUDGE = "[routing.judge]\nenabled = true\ninterval_s = 0.1\nwindow_s = 1.0\nmin_requests = 20\n"


class Connection:
    def __init__(self, channel: grpc.Channel) -> None:
        self.infer = pb_grpc.GRPCInferenceServiceStub(channel)
        self.admin = admin_grpc.RoutingAdminStub(channel)

    def weights(self, model: str) -> dict[int, int]:
        state = self.admin.GetRouting(admin_pb.GetRoutingRequest(model=model)).models[0]
        return {v.version: v.effective_weight for v in state.versions}


@contextmanager
def connections(server: ServerProcess) -> Iterator[list[Connection]]:
    """CONNECTIONS connections, proven to reach both workers."""
    with ExitStack() as stack:
        channels = [
            stack.enter_context(grpc.insecure_channel(server.address, options=OWN_CONNECTION))
            for _ in range(CONNECTIONS)
        ]
        opened = [Connection(channel) for channel in channels]
        # Connection i sends i + 1 requests to `plain`; each worker's ModelStatistics then counts the sum over
        # its own connections. All on one worker, every connection reads the grand total (probability 2**-15).
        for i, connection in enumerate(opened):
            for _ in range(i + 1):
                connection.infer.ModelInfer(request("plain"))
        seen = {
            sum(
                s.inference_stats.success.count
                for s in c.infer.ModelStatistics(pb.ModelStatisticsRequest(name="plain")).model_stats
            )
            for c in opened
        }
        assert seen != {CONNECTIONS * (CONNECTIONS + 1) // 2}, "every connection reached the same worker"
        yield opened


def versions_of(connection: Connection, message: pb.ModelInferRequest, count: int) -> set[int]:
    return {int(connection.infer.ModelInfer(message).model_version) for _ in range(count)}


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    scaled = {1: onnx_models.scaled(1.0), 2: onnx_models.scaled(2.0)}
    onnx_models.write_versions(tmp_path, "plain", {1: scaled[1]}, "max_batch_size = 8\n")
    sticky = 'weights = { "1" = 50, "2" = 50 }\nsticky_key = "user_id"'
    onnx_models.write_versions(tmp_path, "sticky", scaled, routing_config(sticky))
    return tmp_path


def test_every_worker_routes_alike_and_changes_reach_all_of_them(repository: Path) -> None:
    with ServerProcess(repository, "--workers", "2") as server, connections(server) as opened:
        # Sticky callers land on the same version whichever worker serves them.
        for user in (f"user-{i}" for i in range(12)):
            assert len(set().union(*(versions_of(c, request("sticky", user_id=user), 1) for c in opened))) == 1

        # A weight change through one connection holds in every worker once the call returns.
        opened[0].admin.SetWeights(admin_pb.SetWeightsRequest(model="sticky", weights={1: 0, 2: 100}))
        assert all(c.weights("sticky") == {1: 0, 2: 100} for c in opened)
        assert all(versions_of(c, request("sticky", user_id="u"), 3) == {2} for c in opened)

        # So does a rollback.
        opened[3].admin.SetWeights(admin_pb.SetWeightsRequest(model="sticky", weights={1: 50, 2: 50}))
        opened[5].admin.Rollback(admin_pb.RollbackRequest(model="sticky", version=2))
        assert all(c.weights("sticky") == {1: 50, 2: 0} for c in opened)
        assert all(versions_of(c, request("sticky", user_id=f"u{i}"), 1) == {1} for i, c in enumerate(opened))

        # A reload through one connection applies in every worker before it answers.
        (repository / "sticky" / "config.toml").write_text(routing_config('weights = { "1" = 10, "2" = 90 }'))
        opened[7].infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="sticky"))
        assert all(c.weights("sticky") == {1: 10, 2: 90} for c in opened)  # a changed config clears the rollback

        # And an unload.
        opened[2].infer.RepositoryModelUnload(pb.RepositoryModelUnloadRequest(model_name="sticky"))
        for connection in opened:
            with pytest.raises(grpc.RpcError) as caught:
                connection.infer.ModelInfer(request("sticky"))
            assert caught.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]

        # A failing reload anywhere fails the call, with the reason.
        (repository / "sticky" / "config.toml").write_text(routing_config('weights = { "1" = 10, "8" = 90 }'))
        with pytest.raises(grpc.RpcError) as caught:
            opened[1].infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="sticky"))
        assert "version(s) 8" in caught.value.details()  # type: ignore[attr-defined]
        server.terminate()
        assert server.wait(60) == 0


def test_the_judge_rolls_back_on_the_traffic_of_all_workers(tmp_path: Path) -> None:
    models = {1: onnx_models.scaled(1.0), 2: onnx_models.reshape_by_five()}
    onnx_models.write_versions(
        tmp_path, "m", models, routing_config(f'weights = {{ "1" = 70, "2" = 30 }}\n\n{FAST_JUDGE}')
    )
    onnx_models.write_versions(tmp_path, "plain", {1: onnx_models.scaled(1.0)}, "max_batch_size = 8\n")
    with ServerProcess(tmp_path, "--workers", "2") as server, connections(server) as opened:
        deadline = time.monotonic() + 30
        while any(c.weights("m")[2] > 0 for c in opened):
            assert time.monotonic() < deadline, "the failing canary was not rolled back"
            for i, connection in enumerate(opened):  # half the inputs make version 2 fail
                x = np.ones((1, 3 if i % 2 else 5), dtype=np.float32)
                try:
                    connection.infer.ModelInfer(request("m", width=x.shape[1]))
                except grpc.RpcError as error:
                    assert error.code() == grpc.StatusCode.INTERNAL  # type: ignore[attr-defined]
        assert server.metric("inference_rollbacks_total", model="m", version="2", reason="error_rate") == 1
        rollbacks = [entry for entry in server.logs if entry.get("event") == "canary_rollback"]
        assert len(rollbacks) == 1 and rollbacks[0]["evidence"]["canary_errors"] > 0
        state = opened[0].admin.GetRouting(admin_pb.GetRoutingRequest(model="m")).models[0]
        assert state.versions[1].rolled_back and state.versions[1].verdict == "failing"
        server.terminate()
        assert server.wait(60) == 0
