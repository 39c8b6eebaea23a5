"""Release safety on a real server: automatic rollback, no false rollback, persistence, the admin API and CLI."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from oip.v1 import routing_admin_pb2 as admin_pb
from oip.v1 import routing_admin_pb2_grpc as admin_grpc
from server.admin.cli import main as admin_main
from server.app import App
from tests.integration.routing_support import labelled, request, routing_config, samples, served_versions
from tests.support import onnx_models
from tests.support.servers import ThreadedServer, running_app

IDENTICAL = {1: 1.0, 2: 1.0}

#: A judge that decides within a second or two: short interval and window, small minimum sample.
FAST_JUDGE = "[routing.judge]\nenabled = true\ninterval_s = 0.1\nwindow_s = 1.0\nmin_requests = 20\n"


def write_canary(root: Path, canary: bytes, weights: str = '{ "1" = 70, "2" = 30 }', judge: str = FAST_JUDGE) -> None:
    models = {1: onnx_models.scaled(1.0), 2: canary}
    onnx_models.write_versions(root, "m", models, routing_config(f"weights = {weights}\n\n{judge}"))


class Stubs:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.infer = pb_grpc.GRPCInferenceServiceStub(channel)
        self.admin = admin_grpc.RoutingAdminStub(channel)


async def connected(app: App) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        yield Stubs(channel)


async def send_mixed(stubs: Stubs, count: int) -> tuple[int, int]:
    """`count` requests, half of width 3 (the reshape canary fails them) and half of width 5; (ok, failed)."""
    results = await asyncio.gather(
        *(stubs.infer.ModelInfer(request("m", 1.0, width=3 if i % 2 else 5)) for i in range(count)),
        return_exceptions=True,
    )
    failed = [r for r in results if isinstance(r, BaseException)]
    for error in failed:
        assert isinstance(error, grpc.aio.AioRpcError) and error.code() == grpc.StatusCode.INTERNAL
    return len(results) - len(failed), len(failed)


async def weight_of(stubs: Stubs, version: int) -> int:
    state = (await stubs.admin.GetRouting(admin_pb.GetRoutingRequest(model="m"))).models[0]
    return next(v.effective_weight for v in state.versions if v.version == version)


async def test_a_failing_canary_is_rolled_back_and_stays_rolled_back(tmp_path: Path) -> None:
    write_canary(tmp_path, onnx_models.reshape_by_five())
    async with running_app(tmp_path) as app:
        async for stubs in connected(app):
            deadline = asyncio.get_running_loop().time() + 20
            while await weight_of(stubs, 2) > 0:
                assert asyncio.get_running_loop().time() < deadline, "the failing canary was not rolled back"
                await send_mixed(stubs, 40)
            rollbacks = samples(app.registry, "inference_rollbacks_total")
            assert rollbacks == {labelled(model="m", version="2", reason="error_rate"): 1.0}
            weights = samples(app.registry, "inference_routing_weight")
            assert weights[labelled(model="m", version="2")] == 0
            ok, failed = await send_mixed(stubs, 100)  # everything goes to version 1 now
            assert (ok, failed) == (100, 0)
            state = (await stubs.admin.GetRouting(admin_pb.GetRoutingRequest(model="m"))).models[0]
            canary = next(v for v in state.versions if v.version == 2)
            assert canary.rolled_back and canary.rollback_reason == "error_rate"
            assert canary.rollback_evidence["canary_errors"] > 0
    saved = json.loads((tmp_path / ".server-state" / "routing-state.json").read_text())
    assert "2" in saved["models"]["m"]["rolled_back"]

    # A restart does not resurrect it, and neither does a reload of the same config.
    async with running_app(tmp_path) as app:
        async for stubs in connected(app):
            assert await weight_of(stubs, 2) == 0
            await stubs.infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"))
            assert await weight_of(stubs, 2) == 0
            assert set(await served_versions(stubs.infer, [request("m", width=5) for _ in range(50)])) == {1}
            # A changed config for the model clears it.
            write_canary(tmp_path, onnx_models.reshape_by_five(), weights='{ "1" = 80, "2" = 20 }', judge="")
            await stubs.infer.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="m"))
            assert await weight_of(stubs, 2) == 20
    saved = json.loads((tmp_path / ".server-state" / "routing-state.json").read_text())
    assert "m" not in saved["models"]


async def test_a_healthy_canary_identical_to_stable_is_not_rolled_back(tmp_path: Path) -> None:
    # Checks every 0.1 s over 2 s windows: about 50 checks, three windows that do not overlap.
    judge = FAST_JUDGE.replace("window_s = 1.0", "window_s = 2.0").replace("min_requests = 20", "min_requests = 50")
    write_canary(tmp_path, onnx_models.scaled(1.0), weights='{ "1" = 50, "2" = 50 }', judge=judge)
    async with running_app(tmp_path) as app:
        async for stubs in connected(app):
            loop = asyncio.get_running_loop()
            until = loop.time() + 6.0
            while loop.time() < until:
                await served_versions(stubs.infer, [request("m", width=5) for _ in range(32)], scales=IDENTICAL)
            assert app.judge is not None
            evidence = {key: status.verdict for key, status in app.judge.status.items()}
            checks = samples(app.registry, "inference_canary_checks_total")
            assert checks[labelled(model="m", version="2", outcome="healthy")] >= 10, (checks, evidence)
            assert samples(app.registry, "inference_rollbacks_total") == {}, evidence
            assert await weight_of(stubs, 2) == 50


async def test_the_admin_api_changes_routing_at_once(tmp_path: Path) -> None:
    write_canary(tmp_path, onnx_models.scaled(2.0), judge="")
    onnx_models.write_model(tmp_path, "plain", onnx_models.scaled(1.0))
    async with running_app(tmp_path) as app:
        async for stubs in connected(app):
            admin = stubs.admin
            state = await admin.SetWeights(admin_pb.SetWeightsRequest(model="m", weights={1: 0, 2: 100}))
            assert state.overridden and [v.effective_weight for v in state.versions] == [0, 100]
            assert set(await served_versions(stubs.infer, [request("m") for _ in range(40)])) == {2}

            await admin.SetWeights(admin_pb.SetWeightsRequest(model="m", weights={1: 20, 2: 80}))
            state = await admin.Rollback(admin_pb.RollbackRequest(model="m", version=2, reason="bad labels"))
            assert [v.effective_weight for v in state.versions] == [20, 0]
            assert state.versions[1].rolled_back and state.versions[1].rollback_reason == "bad labels"
            assert set(await served_versions(stubs.infer, [request("m") for _ in range(40)])) == {1}
            rollbacks = samples(app.registry, "inference_rollbacks_total")
            assert rollbacks == {labelled(model="m", version="2", reason="manual"): 1.0}

            state = await admin.Promote(admin_pb.VersionRequest(model="m", version=2))
            assert [v.effective_weight for v in state.versions] == [0, 100] and not state.versions[1].rolled_back

            state = await admin.Reset(admin_pb.ModelRequest(model="m"))
            assert not state.overridden and [v.effective_weight for v in state.versions] == [70, 30]
            counts = Counter(await served_versions(stubs.infer, [request("m") for _ in range(200)]))
            assert counts[1] > counts[2] > 0

            state = await admin.PauseJudge(admin_pb.PauseJudgeRequest(model="m", paused=True))
            assert state.judge_paused
            listing = await admin.GetRouting(admin_pb.GetRoutingRequest())
            assert [s.model for s in listing.models] == ["m"]  # only routed models

            mistakes = [
                ("SetWeights", admin_pb.SetWeightsRequest(model="m", weights={7: 1}), "INVALID_ARGUMENT", "7"),
                ("SetWeights", admin_pb.SetWeightsRequest(model="m", weights={1: 0}), "INVALID_ARGUMENT", "positive"),
                ("Rollback", admin_pb.RollbackRequest(model="m", version=9), "INVALID_ARGUMENT", "not loaded"),
                ("Promote", admin_pb.VersionRequest(model="plain", version=1), "INVALID_ARGUMENT", "[routing]"),
                ("GetRouting", admin_pb.GetRoutingRequest(model="nope"), "NOT_FOUND", "nope"),
            ]
            for method, message, code, text in mistakes:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await getattr(admin, method)(message)
                assert caught.value.code().name == code and text in (caught.value.details() or "")
            await admin.SetWeights(admin_pb.SetWeightsRequest(model="m", weights={2: 1}))
            with pytest.raises(grpc.aio.AioRpcError) as caught:  # the only weighted version cannot go
                await admin.Rollback(admin_pb.RollbackRequest(model="m", version=2))
            assert "only version" in (caught.value.details() or "")


def test_the_cli_shows_and_changes_routing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_canary(tmp_path, onnx_models.scaled(2.0), judge="")
    with ThreadedServer(tmp_path) as server:
        assert admin_main(["--address", server.address, "show", "m"]) == 0
        shown = capsys.readouterr().out
        assert "model m  (weights from config.toml, judge off)" in shown
        assert "stable" in shown and "canary" in shown
        assert admin_main(["--address", server.address, "set-weights", "m", "1=20", "2=80"]) == 0
        assert "set at run time" in capsys.readouterr().out
        assert admin_main(["--address", server.address, "--json", "rollback", "m", "2"]) == 0
        answer = json.loads(capsys.readouterr().out)
        assert answer["versions"][1]["rolled_back"] is True
        assert admin_main(["--address", server.address, "promote", "m", "9"]) == 1
        assert "INVALID_ARGUMENT: version 9 of model 'm' is not loaded" in capsys.readouterr().err
