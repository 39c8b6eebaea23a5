"""server.repository.manager.ModelRepository over a tmp repository with a fake loader."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.errors import ModelLoadError, ModelNotFoundError, ModelNotReadyError
from server.model_config import ModelConfig
from server.repository.manager import ModelRepository
from server.repository.records import IndexEntry, ModelRecord, State
from server.routing.config import RoutingConfig
from server.routing.table import RoutingTable, default_table
from server.runtime.runner import RunResult, RunTimings
from server.statistics import VersionStatistics
from server.telemetry.metrics import ServerMetrics
from server.types import ModelSignature, TensorSpec
from server.versions.loaded import LoadedVersion

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 2)),), outputs=(TensorSpec("y", "FP32", (-1, 2)),), max_batch_size=4
)


class FakeRunner:
    """Records runs and closes; `on_close` lets a test look at the repository at close time."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.runs: list[tuple[dict[str, Any], tuple[str, ...]]] = []
        self.close_calls = 0
        self.on_close: Callable[[], None] | None = None

    async def run(self, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> RunResult:
        self.runs.append((dict(inputs), tuple(output_names)))
        return RunResult(outputs={}, timings=RunTimings(0, 0, 0, 0))

    def close(self) -> None:
        self.close_calls += 1
        if self.on_close is not None:
            self.on_close()


@dataclass
class FakeLoader:
    """The injected VersionLoader: builds LoadedVersions with FakeRunners, or fails on demand."""

    failures: dict[tuple[str, int], BaseException] = field(default_factory=dict)
    calls: list[tuple[str, int, Path, ModelConfig]] = field(default_factory=list)
    runners: list[FakeRunner] = field(default_factory=list)

    async def __call__(self, name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        self.calls.append((name, version, path, config))
        failure = self.failures.get((name, version))
        if failure is not None:
            raise failure
        runner = FakeRunner(f"{name}:{version}")
        self.runners.append(runner)
        recorder = ServerMetrics(CollectorRegistry()).recorder(name, version, VersionStatistics())
        batcher = DynamicBatcher(runner, BatchPolicy(max_batch_size=0), f"{name}:{version}", recorder.executed)
        await batcher.start()
        return LoadedVersion(name, version, SIGNATURE, config, runner, batcher, ("CPUExecutionProvider",), recorder)

    def versions_loaded(self, name: str) -> list[int]:
        return sorted(version for model, version, _, _ in self.calls if model == name)


def add_version(root: Path, model: str, version: int, filename: str = "model.onnx") -> Path:
    path = root / model / str(version) / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def write_config(root: Path, model: str, text: str) -> None:
    (root / model).mkdir(parents=True, exist_ok=True)
    (root / model / "config.toml").write_text(text, encoding="utf-8")


def runner_of(loaded: LoadedVersion) -> FakeRunner:
    assert isinstance(loaded.runner, FakeRunner)
    return loaded.runner


@pytest.fixture
def root(tmp_path: Path) -> Path:
    repo = tmp_path / "models"
    repo.mkdir()
    return repo


@pytest.fixture
def loader() -> FakeLoader:
    return FakeLoader()


@pytest.fixture
def repo(root: Path, loader: FakeLoader) -> ModelRepository:
    return ModelRepository(root, loader, drain_timeout_s=5.0)


# ----------------------------------------------------------------------- loading


async def test_load_all_loads_every_version(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "alpha", version)
    add_version(root, "beta", 1)
    (root / "_hidden").mkdir()

    await repo.load_all()

    assert [record.name for record in repo.records()] == ["alpha", "beta"]
    assert loader.versions_loaded("alpha") == [1, 2]
    assert loader.versions_loaded("beta") == [1]
    assert [(lv.model_name, lv.version) for lv in repo.loaded_versions()] == [("alpha", 1), ("alpha", 2), ("beta", 1)]
    assert await repo.index() == [
        IndexEntry("alpha", "1", State.READY, ""),
        IndexEntry("alpha", "2", State.READY, ""),
        IndexEntry("beta", "1", State.READY, ""),
    ]
    assert repo.is_ready("alpha")
    assert repo.is_ready("alpha", "2")
    assert not repo.is_ready("alpha", "3")
    assert not repo.is_ready("gamma")


async def test_loader_gets_model_file_and_config(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    write_config(root, "m", 'model_filename = "net.onnx"\nmax_batch_size = 2\n')
    expected = add_version(root, "m", 1, "net.onnx")

    await repo.load("m")

    ((name, version, path, config),) = loader.calls
    assert (name, version, path) == ("m", 1, expected)
    assert config.max_batch_size == 2
    assert repo.record("m").config == config


async def test_resolve_empty_version_is_highest(root: Path, repo: ModelRepository) -> None:
    for version in (1, 10, 2):
        add_version(root, "m", version)
    await repo.load("m")
    assert repo.resolve("m", "").version == 10
    assert repo.resolve("m").version == 10
    assert repo.resolve("m", "2").version == 2


async def test_resolve_unknown_model(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    with pytest.raises(ModelNotFoundError, match=r"model 'nope' is not in the repository; known models: m"):
        repo.resolve("nope")


async def test_resolve_unknown_version_lists_ready_versions(
    root: Path, loader: FakeLoader, repo: ModelRepository
) -> None:
    for version in (1, 2, 3):
        add_version(root, "m", version)
    loader.failures[("m", 3)] = ModelLoadError("broken")
    await repo.load("m")
    with pytest.raises(ModelNotFoundError, match=r"version 7 of model 'm' does not exist; ready versions: 1, 2"):
        repo.resolve("m", "7")


@pytest.mark.parametrize("version", ["latest", "v1", "-1", "1.0", " 1"])
async def test_resolve_non_numeric_version(root: Path, repo: ModelRepository, version: str) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    with pytest.raises(ModelNotFoundError, match="versions are whole numbers"):
        repo.resolve("m", version)


async def test_resolve_non_ascii_digit_version_is_not_found(root: Path, repo: ModelRepository) -> None:
    # "²".isdigit() is True but int("²") raises ValueError: must still be a NOT_FOUND, not a crash.
    add_version(root, "m", 1)
    await repo.load("m")
    with pytest.raises(ModelNotFoundError):
        repo.resolve("m", "\u00b2")


async def test_failed_version_leaves_others_ready(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    loader.failures[("m", 2)] = ModelLoadError("bad graph in version 2")

    record = await repo.load("m")

    assert sorted(record.loaded) == [1]
    assert repo.resolve("m").version == 1
    assert await repo.index() == [
        IndexEntry("m", "1", State.READY, ""),
        IndexEntry("m", "2", State.UNAVAILABLE, "bad graph in version 2"),
    ]
    assert await repo.index(ready_only=True) == [IndexEntry("m", "1", State.READY, "")]
    with pytest.raises(ModelNotReadyError, match="version 2 of model 'm' is UNAVAILABLE: bad graph in version 2"):
        repo.resolve("m", "2")


async def test_unexpected_loader_error_is_recorded(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    loader.failures[("m", 1)] = RuntimeError("out of memory")
    await repo.load("m")
    entries = await repo.index()
    assert entries[0] == IndexEntry("m", "1", State.UNAVAILABLE, "RuntimeError: out of memory")


async def test_all_versions_fail(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    loader.failures[("m", 1)] = ModelLoadError("no such op")

    with pytest.raises(ModelLoadError, match="failed to load model 'm': version 1: no such op"):
        await repo.load("m")

    assert await repo.index() == [IndexEntry("m", "1", State.UNAVAILABLE, "no such op")]
    with pytest.raises(ModelNotReadyError, match="model 'm' has no ready version"):
        repo.resolve("m")


async def test_load_all_records_failures_without_raising(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    add_version(root, "good", 1)
    add_version(root, "bad", 1)
    loader.failures[("bad", 1)] = ModelLoadError("corrupt")
    await repo.load_all()
    assert repo.is_ready("good")
    assert not repo.is_ready("bad")


async def test_bad_config_gives_model_level_entry(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    write_config(root, "m", "max_batch = 4\n")

    with pytest.raises(ModelLoadError, match="max_batch"):
        await repo.load("m")
    await repo.load_all()  # the same failure through load_all is recorded, not raised

    assert loader.calls == []
    (entry,) = await repo.index()
    assert (entry.name, entry.version, entry.state) == ("m", "", State.UNAVAILABLE)
    assert "config.toml is invalid" in entry.reason
    assert "max_batch" in entry.reason
    with pytest.raises(ModelNotReadyError, match=r"config\.toml is invalid"):
        repo.resolve("m")


async def test_model_without_versions(root: Path, repo: ModelRepository) -> None:
    (root / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="has no numbered version directories"):
        await repo.load("empty")
    (entry,) = await repo.index()
    assert entry.version == ""
    assert "no numbered version directories" in entry.reason


async def test_index_lists_models_on_disk_not_loaded(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    assert await repo.index() == [IndexEntry("m", "", State.UNAVAILABLE, "not loaded")]
    assert await repo.index(ready_only=True) == []


async def test_load_missing_model_dir(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    with pytest.raises(ModelNotFoundError, match=r"model 'ghost' has no directory in the repository .*known models: m"):
        await repo.load("ghost")
    with pytest.raises(ModelNotFoundError):
        await repo.load("../m")


async def test_latest_policy(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    for version in (1, 2, 3):
        add_version(root, "m", version)
    write_config(root, "m", '[versions]\npolicy = "latest"\nlatest = 2\n')

    await repo.load("m")

    assert loader.versions_loaded("m") == [2, 3]
    assert [entry.version for entry in await repo.index()] == ["2", "3"]
    with pytest.raises(ModelNotFoundError, match="ready versions: 2, 3"):
        repo.resolve("m", "1")


async def test_specific_policy_selecting_nothing(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    write_config(root, "m", '[versions]\npolicy = "specific"\nversions = [5]\n')
    with pytest.raises(ModelLoadError, match=r"version policy 'specific' selects none of the versions on disk \(1\)"):
        await repo.load("m")


async def test_loaded_versions_filters(root: Path, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    add_version(root, "n", 1)
    await repo.load_all()
    assert [lv.version for lv in repo.loaded_versions("m")] == [1, 2]
    assert [lv.label for lv in repo.loaded_versions("m", "2")] == ["m:2"]
    with pytest.raises(ModelNotFoundError):
        repo.loaded_versions("zzz")


# ---------------------------------------------------------------------- listeners


async def test_listeners_get_records_on_every_change(root: Path, loader: FakeLoader) -> None:
    add_version(root, "m", 1)
    seen: list[tuple[str, dict[int, str]]] = []

    def listener(record: ModelRecord) -> None:
        assert isinstance(record, ModelRecord)
        seen.append((record.name, {v: s.state.value for v, s in record.status.items()}))

    late: list[ModelRecord] = []
    repo = ModelRepository(root, loader, listeners=[listener])
    repo.add_listener(late.append)

    await repo.load("m")
    assert seen == [("m", {1: "LOADING"}), ("m", {1: "READY"})]

    await repo.unload("m")
    assert seen[2:] == [("m", {1: "UNLOADING"}), ("m", {1: "UNAVAILABLE"})]
    assert len(late) == 4
    assert late[-1].reason == "unloaded"


# ------------------------------------------------------------------------ unload


async def test_unload(root: Path, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    await repo.load("m")
    runners = [runner_of(lv) for lv in repo.loaded_versions("m")]

    await repo.unload("m")

    assert [runner.close_calls for runner in runners] == [1, 1]
    with pytest.raises(ModelNotReadyError, match="model 'm' has no ready version \\(unloaded\\)"):
        repo.resolve("m")
    with pytest.raises(ModelNotReadyError, match="version 1 of model 'm' is UNAVAILABLE: unloaded"):
        repo.resolve("m", "1")
    assert await repo.index() == [
        IndexEntry("m", "1", State.UNAVAILABLE, "unloaded"),
        IndexEntry("m", "2", State.UNAVAILABLE, "unloaded"),
    ]


async def test_unload_unknown_model(repo: ModelRepository) -> None:
    with pytest.raises(ModelNotFoundError):
        await repo.unload("m")


async def test_unload_all(root: Path, repo: ModelRepository) -> None:
    add_version(root, "a", 1)
    add_version(root, "b", 1)
    await repo.load_all()
    runners = [runner_of(lv) for lv in repo.loaded_versions()]
    await repo.unload_all()
    assert [runner.close_calls for runner in runners] == [1, 1]
    assert await repo.index(ready_only=True) == []


async def test_unload_waits_for_in_flight(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    loaded = repo.resolve("m")
    runner = runner_of(loaded)
    release = asyncio.Event()
    entered = asyncio.Event()

    async def request() -> None:
        with loaded.serving():
            entered.set()
            await release.wait()
            assert runner.close_calls == 0

    in_flight = asyncio.create_task(request())
    await entered.wait()
    unloading = asyncio.create_task(repo.unload("m"))
    await asyncio.sleep(0.005)

    assert not unloading.done()
    assert runner.close_calls == 0
    with pytest.raises(ModelNotReadyError, match="UNLOADING"):
        repo.resolve("m", "1")

    release.set()
    await asyncio.wait_for(asyncio.gather(in_flight, unloading), 1.0)
    assert runner.close_calls == 1


async def test_unload_closes_after_drain_timeout(root: Path, loader: FakeLoader) -> None:
    add_version(root, "m", 1)
    repo = ModelRepository(root, loader, drain_timeout_s=0.01)
    await repo.load("m")
    loaded = repo.resolve("m")
    with loaded.serving():
        await asyncio.wait_for(repo.unload("m"), 1.0)
        assert runner_of(loaded).close_calls == 1


async def test_load_after_unload(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    await repo.unload("m")
    await repo.load("m")
    assert repo.resolve("m").version == 1
    assert [runner.close_calls for runner in loader.runners] == [1, 0]


# ------------------------------------------------------------------------ reload


async def test_reload_serves_new_version_and_closes_old_after_switch(
    root: Path, loader: FakeLoader, repo: ModelRepository
) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    await repo.load("m")
    old = repo.loaded_versions("m")
    served_at_close: list[tuple[int, bool]] = []
    for loaded in old:
        runner_of(loaded).on_close = lambda: served_at_close.append(
            (repo.resolve("m").version, any(lv in old for lv in repo.loaded_versions("m")))
        )

    add_version(root, "m", 3)
    record = await repo.load("m")

    assert sorted(record.loaded) == [1, 2, 3]
    assert repo.resolve("m").version == 3
    # Both old runners closed, each after traffic had switched to the new versions.
    assert served_at_close == [(3, False), (3, False)]
    assert all(runner_of(lv).close_calls == 1 for lv in old)
    assert all(runner_of(lv).close_calls == 0 for lv in repo.loaded_versions("m"))
    assert len(loader.runners) == 5


async def test_reload_does_not_publish_loading_over_serving_versions(root: Path, loader: FakeLoader) -> None:
    add_version(root, "m", 1)
    states: list[dict[int, str]] = []
    repo = ModelRepository(root, loader, listeners=[lambda r: states.append({v: s.state for v, s in r.status.items()})])
    await repo.load("m")
    add_version(root, "m", 2)
    await repo.load("m")
    assert states == [{1: "LOADING"}, {1: "READY"}, {1: "READY", 2: "READY"}]


async def test_failed_reload_keeps_previous_versions(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    before = repo.resolve("m")

    loader.failures[("m", 1)] = ModelLoadError("new file is corrupt")
    with pytest.raises(ModelLoadError, match="previous versions keep serving: version 1: new file is corrupt"):
        await repo.load("m")

    assert repo.resolve("m") is before
    assert runner_of(before).close_calls == 0
    assert repo.record("m").reason.startswith("reload failed:")
    assert await repo.index() == [IndexEntry("m", "1", State.READY, "")]


async def test_reload_with_bad_config_keeps_previous_versions(root: Path, repo: ModelRepository) -> None:
    add_version(root, "m", 1)
    await repo.load("m")
    before = repo.resolve("m")

    write_config(root, "m", "this is not toml\n")
    with pytest.raises(ModelLoadError, match="is not valid TOML"):
        await repo.load("m")

    assert repo.resolve("m") is before
    assert runner_of(before).close_calls == 0
    assert "reload failed" in repo.record("m").reason
    assert "is not valid TOML" in repo.record("m").reason


async def test_concurrent_loads_of_one_model_are_serialised(root: Path, loader: FakeLoader) -> None:
    add_version(root, "m", 1)
    active = 0
    peak = 0

    async def slow_loader(name: str, version: int, path: Path, config: ModelConfig) -> LoadedVersion:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.002)
        active -= 1
        return await loader(name, version, path, config)

    repo = ModelRepository(root, slow_loader)
    await asyncio.gather(repo.load("m"), repo.load("m"))
    assert peak == 1
    assert [runner.close_calls for runner in loader.runners] == [1, 0]
    assert runner_of(repo.resolve("m")) is loader.runners[1]


async def test_a_partly_failing_reload_applies_nothing(root: Path, loader: FakeLoader, repo: ModelRepository) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    await repo.load("m")
    before = repo.record("m")

    loader.failures[("m", 2)] = ModelLoadError("version 2 is corrupt now")
    with pytest.raises(
        ModelLoadError, match="nothing changed, previous versions keep serving: version 2: version 2 is"
    ):
        await repo.load("m")

    assert repo.record("m").loaded == before.loaded
    new_version_1 = loader.runners[-1]  # loaded for the abandoned reload, then closed again
    assert new_version_1.close_calls == 1
    assert all(runner_of(loaded).close_calls == 0 for loaded in before.loaded.values())


async def test_a_first_load_serves_the_versions_that_loaded(
    root: Path, loader: FakeLoader, repo: ModelRepository
) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    loader.failures[("m", 2)] = ModelLoadError("corrupt")
    await repo.load("m")
    assert sorted(repo.record("m").loaded) == [1]
    assert repo.record("m").status[2].state == State.UNAVAILABLE


async def test_reroute_republishes_the_record_with_a_fresh_table(root: Path, loader: FakeLoader) -> None:
    for version in (1, 2):
        add_version(root, "m", version)
    write_config(root, "m", '[routing]\nweights = { "1" = 90, "2" = 10 }\n')
    overrides: dict[int, int] = {}

    def policy(config: RoutingConfig, name: str, ready: Collection[int]) -> RoutingTable:
        weights = {**config.weights, **overrides}
        return default_table(config.model_copy(update={"weights": weights}), name, ready)

    repo = ModelRepository(root, loader, routing=policy)
    await repo.load("m")
    loaded = repo.record("m").loaded
    overrides.update({1: 0, 2: 100})
    record = await repo.reroute("m")
    assert record.routing is not None and record.routing.weights == {1: 0, 2: 100}
    assert record.loaded == loaded and repo.record("m") is record
    assert repo.resolve("m").version == 2  # the default version follows the stable one
