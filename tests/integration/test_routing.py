"""Version routing on a real server: weights, sticky keys, pinning, shadow traffic, reloads."""

from __future__ import annotations

import asyncio
import shutil
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import grpc
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from server.errors import ConflictError
from server.routing.sticky import sticky_bucket
from server.routing.table import choose
from tests.integration.routing_support import (
    build_routing_repository,
    labelled,
    request,
    routing_config,
    samples,
    served_versions,
)
from tests.support import onnx_models
from tests.support.servers import running_app

Served = tuple[App, pb_grpc.GRPCInferenceServiceStub]


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    build_routing_repository(tmp_path)
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        yield app, pb_grpc.GRPCInferenceServiceStub(channel)


async def until(condition: object, timeout_s: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():  # type: ignore[operator]
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_90_10_split_is_measured_on_the_served_versions(served: Served) -> None:
    app, stub = served
    draws = 2000
    counts = Counter(await served_versions(stub, [request("split") for _ in range(draws)]))
    # 5 standard deviations of a 10 % share over 2000 draws: 3.4 points.
    assert abs(counts[2] / draws - 0.10) < 0.034, counts
    routed = samples(app.registry, "inference_routed_requests_total")
    assert routed[labelled(model="split", version="1", route="weighted")] == counts[1]
    assert routed[labelled(model="split", version="2", route="weighted")] == counts[2]
    # On the native frontend C++ made these decisions (native/src/fast_path.cpp), from the table Python published.
    native = samples(app.registry, "inference_native_requests_total").get(labelled(model="split"), 0)
    assert native == (draws if app.frontend == "native" else 0)
    weights = samples(app.registry, "inference_routing_weight")
    assert weights[labelled(model="split", version="1")] == 90
    assert weights[labelled(model="split", version="2")] == 10


async def test_sticky_by_parameter_keeps_each_caller_on_one_version(served: Served) -> None:
    app, stub = served
    users = [f"user-{i}" for i in range(40)]
    messages = [request("sticky", user_id=user) for user in users for _ in range(5)]
    versions = await served_versions(stub, messages)
    by_user: dict[str, set[int]] = {}
    for message, version in zip(messages, versions, strict=True):
        by_user.setdefault(message.parameters["user_id"].string_param, set()).add(version)
    assert all(len(seen) == 1 for seen in by_user.values()), by_user
    assert {next(iter(seen)) for seen in by_user.values()} == {1, 2}  # 40 callers at 50/50 reach both
    routed = samples(app.registry, "inference_routed_requests_total")
    sticky = sum(v for k, v in routed.items() if ("route", "sticky") in k and ("model", "sticky") in k)
    assert sticky == len(messages)
    # Each caller is on the version the Python router's rule gives its key (on the native frontend C++ decided).
    table = app.repository.record("sticky").routing
    assert table is not None
    for user, seen in by_user.items():
        decision = choose(table, sticky_bucket(table.salt, user.encode()), True)
        assert decision is not None and seen == {decision[0]}, user
    native = samples(app.registry, "inference_native_requests_total").get(labelled(model="sticky"), 0)
    assert native == (len(messages) if app.frontend == "native" else 0)


async def test_sticky_by_metadata_and_integer_parameters_agree(served: Served) -> None:
    # A key finds the same version whether it comes as metadata or as a parameter (read by C++ on the native
    # frontend, by the Python router on grpc.aio).
    app, stub = served
    users = ("7", "1234", "alice", "bob", "carol", "dave", "erin", "frank")
    for user in users:
        by_metadata = await served_versions(stub, [request("sticky")] * 5, metadata=[("user_id", user)])
        by_parameter = await served_versions(stub, [request("sticky", user_id=user)] * 5)
        assert len(set(by_metadata)) == 1 and set(by_metadata) == set(by_parameter)
    native = samples(app.registry, "inference_native_requests_total").get(labelled(model="sticky"), 0)
    assert native == (10 * len(users) if app.frontend == "native" else 0)
    routed = samples(app.registry, "inference_routed_requests_total")
    sticky = sum(v for k, v in routed.items() if ("route", "sticky") in k and ("model", "sticky") in k)
    assert sticky == 10 * len(users)
    # an int64 parameter is the same key as its decimal text
    assert set(await served_versions(stub, [request("sticky", user_id=1234)] * 3)) == set(
        await served_versions(stub, [request("sticky", user_id="1234")] * 3)
    )


async def test_a_pinned_version_always_wins(served: Served) -> None:
    app, stub = served
    versions = await served_versions(stub, [request("split", version="2", user_id="x") for _ in range(50)])
    assert set(versions) == {2}
    routed = samples(app.registry, "inference_routed_requests_total")
    assert routed[labelled(model="split", version="2", route="pinned")] == 50


async def test_an_unusable_sticky_value_is_routed_by_weight_and_counted(served: Served) -> None:
    app, stub = served
    versions = await served_versions(
        stub, [request("sticky", user_id=True), request("sticky", user_id=2.5), request("sticky", user_id="x" * 300)]
    )
    assert len(versions) == 3  # served, not failed
    invalid = samples(app.registry, "inference_sticky_key_invalid_total")
    assert invalid[labelled(model="sticky", reason="type")] == 2
    assert invalid[labelled(model="sticky", reason="length")] == 1


async def test_shadow_copies_never_change_responses_and_their_differences_are_measured(served: Served) -> None:
    app, stub = served
    count = 40
    versions = await served_versions(stub, [request("shadowed", 0.5) for _ in range(count)])
    assert set(versions) == {1}  # version 3 answers 3x: any leak would fail served_versions' value check
    key = labelled(model="shadowed", version="1", shadow_version="3", result="disagree")

    def compared() -> float:
        return samples(app.registry, "inference_shadow_comparisons_total").get(key, 0)

    await until(lambda: compared() == count)
    diff = samples(app.registry, "inference_shadow_abs_diff_sum")
    assert diff[labelled(model="shadowed", version="1", shadow_version="3")] == pytest.approx(count * 1.0)
    latency = samples(app.registry, "inference_shadow_duration_seconds_count")
    assert latency[labelled(model="shadowed", version="1", shadow_version="3")] == count
    routed = samples(app.registry, "inference_routed_requests_total")
    assert routed[labelled(model="shadowed", version="3", route="shadow")] == count


async def test_a_shadow_fraction_copies_that_share_of_requests_once(tmp_path: Path) -> None:
    # On the native frontend C++ draws the copy and hands only the drawn requests to the Python path, which must not
    # draw again (that would copy a quarter, not half); the rest stay in C++.
    models = {1: onnx_models.scaled(1.0), 3: onnx_models.scaled(3.0)}
    config = routing_config('weights = { "1" = 100 }\nshadow = { version = 3, fraction = 0.5 }')
    onnx_models.write_versions(tmp_path, "halved", models, config)
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        count = 600
        versions = await served_versions(stub, [request("halved", 0.5) for _ in range(count)])
        assert set(versions) == {1}
        key = labelled(model="halved", version="1", shadow_version="3", result="disagree")
        copies = await settled(lambda: samples(app.registry, "inference_shadow_comparisons_total").get(key, 0))
        # 5 standard deviations of a 50 % share over 600 requests: 61.
        assert abs(copies - count / 2) < 61, copies
        native = samples(app.registry, "inference_native_requests_total").get(labelled(model="halved"), 0)
        assert native == (count - copies if app.frontend == "native" else 0)


async def settled(read: Callable[[], float], quiet_s: float = 0.3) -> float:
    """`read()` once it has stopped changing for `quiet_s` (shadow copies are compared after the answers)."""
    last, since = read(), asyncio.get_running_loop().time()
    while asyncio.get_running_loop().time() - since < quiet_s:
        await asyncio.sleep(0.05)
        now = read()
        if now != last:
            last, since = now, asyncio.get_running_loop().time()
    return last


async def test_class_scores_agree_when_their_argmax_does(served: Served) -> None:
    app, stub = served
    # Rows of 4 scores: version 3 triples them, so the largest score stays the largest.
    await served_versions(stub, [request("shadowed", 0.25, width=4) for _ in range(5)])
    key = labelled(model="shadowed", version="1", shadow_version="3", result="agree")
    await until(lambda: samples(app.registry, "inference_shadow_comparisons_total").get(key, 0) == 5)


async def test_a_failing_shadow_never_fails_the_primary(served: Served) -> None:
    app, stub = served
    # width 3: the shadow's Reshape to [-1, 5] fails inside ONNX Runtime for every request
    versions = await served_versions(stub, [request("shadowfail", 2.0, width=3) for _ in range(20)])
    assert set(versions) == {1}
    key = labelled(model="shadowfail", version="1", shadow_version="2", code="INTERNAL")
    await until(lambda: samples(app.registry, "inference_shadow_errors_total").get(key, 0) == 20)


async def test_metadata_without_a_version_describes_the_stable_version(tmp_path: Path) -> None:
    models = {1: onnx_models.scaled(1.0), 2: onnx_models.scaled(2.0)}
    onnx_models.write_versions(tmp_path, "m", models, routing_config('weights = { "1" = 70, "2" = 30 }'))
    async with running_app(tmp_path) as app:
        assert app.repository.resolve("m").version == 1  # the stable version, not the highest


async def test_invalid_routing_makes_the_model_unavailable_with_the_reason(tmp_path: Path) -> None:
    models = {1: onnx_models.scaled(1.0)}
    onnx_models.write_versions(tmp_path, "ghost", models, routing_config('weights = { "1" = 90, "5" = 10 }'))
    onnx_models.write_versions(tmp_path, "negative", models, routing_config('weights = { "1" = -1 }'))
    onnx_models.write_versions(tmp_path, "fine", models, routing_config('weights = { "1" = 1 }'))
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        index = {(m.name, m.version): m for m in (await stub.RepositoryIndex(pb.RepositoryIndexRequest())).models}
        assert index[("ghost", "1")].state == "UNAVAILABLE"
        assert "version(s) 5 of model 'ghost' that did not load" in index[("ghost", "1")].reason
        assert index[("negative", "")].state == "UNAVAILABLE"
        assert "weights must not be negative" in index[("negative", "")].reason
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(request("ghost"))
        assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await served_versions(stub, [request("fine")]) == [1]


async def test_a_partly_failing_reload_changes_nothing(served: Served, tmp_path: Path) -> None:
    app, stub = served
    before = app.repository.record("split")
    (tmp_path / "split" / "config.toml").write_text(routing_config('weights = { "1" = 0, "2" = 100 }'))
    (tmp_path / "split" / "2" / "model.onnx").write_bytes(b"corrupt")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="split"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "nothing changed, previous versions keep serving" in (caught.value.details() or "")
    assert "version 2" in (caught.value.details() or "")
    after = app.repository.record("split")
    assert after.loaded == before.loaded and after.routing == before.routing
    counts = Counter(await served_versions(stub, [request("split") for _ in range(400)]))
    assert counts[1] > counts[2] > 0  # still 90/10 over the old versions
    index = {(m.name, m.version): m.state for m in (await stub.RepositoryIndex(pb.RepositoryIndexRequest())).models}
    assert index[("split", "1")] == index[("split", "2")] == "READY"


async def test_an_invalid_routing_reload_keeps_the_previous_routing(served: Served, tmp_path: Path) -> None:
    app, stub = served
    before = app.repository.record("split").routing
    (tmp_path / "split" / "config.toml").write_text(routing_config('weights = { "1" = 50, "9" = 50 }'))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="split"))
    assert "version(s) 9" in (caught.value.details() or "")
    assert app.repository.record("split").routing == before


async def test_a_reload_moves_traffic_with_no_failed_request_under_load(served: Served, tmp_path: Path) -> None:
    _, stub = served
    stop = asyncio.Event()
    seen: list[int] = []

    async def load() -> None:
        while not stop.is_set():
            seen.extend(await served_versions(stub, [request("split") for _ in range(16)], concurrency=16))

    loaders = [asyncio.create_task(load()) for _ in range(2)]
    await until(lambda: len(seen) > 200)
    (tmp_path / "split" / "config.toml").write_text(routing_config('weights = { "1" = 0, "2" = 100 }'))
    await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="split"))
    switched = len(seen)
    await until(lambda: len(seen) > switched + 200)
    stop.set()
    await asyncio.gather(*loaders)  # any failed request would have raised here
    after = seen[switched + 64 :]  # requests already in flight at the switch may still be on version 1
    assert set(after) == {2}


async def test_a_shadow_version_that_fails_to_load_leaves_the_model_serving(tmp_path: Path) -> None:
    models = {1: onnx_models.scaled(1.0), 3: b"not an onnx file"}
    config = routing_config('weights = { "1" = 100 }\nshadow = { version = 3, fraction = 1.0 }')
    onnx_models.write_versions(tmp_path, "m", models, config)
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        assert await served_versions(stub, [request("m") for _ in range(10)]) == [1] * 10
        routing = app.repository.record("m").routing
        assert routing is not None and routing.shadow_version is None
        index = {(e.name, e.version): e.state for e in (await stub.RepositoryIndex(pb.RepositoryIndexRequest())).models}
        assert index[("m", "1")] == "READY" and index[("m", "3")] == "UNAVAILABLE"


async def test_a_routing_change_racing_a_reload_is_refused_not_misapplied(served: Served, tmp_path: Path) -> None:
    app, stub = served
    change = app.release.set_weights("split", {1: 0, 2: 100})  # made against the config now serving
    (tmp_path / "split" / "config.toml").write_text(routing_config('weights = { "1" = 60, "2" = 40 }'))
    await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="split"))
    with pytest.raises(ConflictError, match=r"changed \(a reload\) while this change was made"):
        await app.coordinator.change_routing(change)
    routing = app.repository.record("split").routing
    assert routing is not None and routing.weights == {1: 60, 2: 40}


async def test_a_stream_routes_by_its_metadata_and_each_request_s_parameters(served: Served) -> None:
    _, stub = served

    async def requests(users: list[str | None]) -> AsyncIterator[pb.ModelInferRequest]:
        for i, user in enumerate(users):
            message = request("sticky") if user is None else request("sticky", user_id=user)
            message.id = str(i)
            yield message

    def versions(responses: list[pb.ModelStreamInferResponse]) -> list[int]:
        assert all(r.error_message == "" for r in responses)
        return [int(r.infer_response.model_version) for r in responses]

    # The stream's metadata is every request's sticky key...
    call = stub.ModelStreamInfer(requests([None] * 10), metadata=[("user_id", "stream-caller")])
    by_metadata = versions([r async for r in call])
    assert len(set(by_metadata)) == 1
    # ...unless a request carries the parameter, which comes first: a caller the metadata's version does not serve.
    users = [f"user-{i}" for i in range(20)]
    unary = await served_versions(stub, [request("sticky", user_id=user) for user in users])
    other = next(user for user, version in zip(users, unary, strict=True) if version != by_metadata[0])
    call = stub.ModelStreamInfer(requests([other] * 5), metadata=[("user_id", "stream-caller")])
    assert set(versions([r async for r in call])) == {3 - by_metadata[0]}


async def test_sticky_from_limits_where_the_key_is_read(tmp_path: Path) -> None:
    models = {1: onnx_models.scaled(1.0), 2: onnx_models.scaled(2.0)}
    for source in ("parameter", "metadata"):
        body = f'weights = {{ "1" = 50, "2" = 50 }}\nsticky_key = "user_id"\nsticky_from = "{source}"'
        onnx_models.write_versions(tmp_path, f"by_{source}", models, routing_config(body))
    async with running_app(tmp_path) as app, grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)
        metadata = [("user_id", "alice")]
        # read where configured: one version per caller
        assert len(set(await served_versions(stub, [request("by_parameter", user_id="alice")] * 20))) == 1
        assert len(set(await served_versions(stub, [request("by_metadata")] * 20, metadata=metadata))) == 1
        # ignored elsewhere: 50/50 by weight, so 40 requests reach both versions
        assert set(await served_versions(stub, [request("by_parameter")] * 40, metadata=metadata)) == {1, 2}
        assert set(await served_versions(stub, [request("by_metadata", user_id="alice")] * 40)) == {1, 2}


async def test_a_version_removed_under_load_fails_no_request(served: Served, tmp_path: Path) -> None:
    # Requests decided against the routing table just before a reload retires their version go to the current
    # one: on the native frontend a request admitted by the old table is handed to the Python path rather than
    # refused, unary or streamed.
    _, stub = served
    stop = asyncio.Event()
    seen: list[int] = []
    streamed_errors: list[str] = []

    async def unary() -> None:
        while not stop.is_set():
            seen.extend(await served_versions(stub, [request("split") for _ in range(16)], concurrency=16))

    async def streamed() -> None:
        while not stop.is_set():
            messages = [request("split") for _ in range(16)]
            async for response in stub.ModelStreamInfer(iter(messages)):
                if response.error_message:
                    streamed_errors.append(response.error_message)
                else:
                    seen.append(int(response.infer_response.model_version))

    loaders = [asyncio.create_task(unary()), asyncio.create_task(streamed())]
    await until(lambda: len(seen) > 200)
    shutil.rmtree(tmp_path / "split" / "1")
    (tmp_path / "split" / "config.toml").write_text(routing_config('weights = { "2" = 100 }'))
    await stub.RepositoryModelLoad(pb.RepositoryModelLoadRequest(model_name="split"))
    switched = len(seen)
    await until(lambda: len(seen) > switched + 400)
    stop.set()
    await asyncio.gather(*loaders)  # a failed unary request would have raised here
    assert streamed_errors == []
    assert set(seen[switched + 64 :]) == {2}
