"""server.native.fast_table: which loaded versions the native ModelInfer path may serve, and the routing rows.

Real LoadedVersion objects throughout: a fake runner (never called) and an unstarted DynamicBatcher are all
that building one needs, so no runtime and no event loop is involved.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy.typing as npt
import pytest
from prometheus_client import CollectorRegistry

from server.batching.batcher import BatchPolicy, DynamicBatcher
from server.model_config import BatchingConfig, ModelConfig
from server.native.fast_table import NOT_READY, VersionKeys, eligible, fast_table, unversioned_routes
from server.repository.records import ModelRecord
from server.routing.config import RoutingConfig, ShadowConfig
from server.routing.table import RoutingTable, build_table, default_table
from server.runtime.runner import RunResult
from server.statistics import VersionStatistics
from server.telemetry.metrics import ServerMetrics
from server.types import ModelSignature, TensorSpec
from server.versions.loaded import LoadedVersion
from tests.integration.helpers import DATATYPES

NUMERIC = ModelSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 3)), TensorSpec("mask", "BOOL", (-1, 3))),
    outputs=(TensorSpec("scores", "FP32", (-1, 2)), TensorSpec("label", "INT64", (-1,))),
    max_batch_size=8,
    max_batch_size_configured=False,
)
BYTES_INPUT = ModelSignature(
    inputs=(TensorSpec("text", "BYTES", (-1,)),), outputs=(TensorSpec("y", "FP32", (-1, 2)),), max_batch_size=8
)
BYTES_OUTPUT = ModelSignature(
    inputs=(TensorSpec("x", "FP32", (-1, 3)),), outputs=(TensorSpec("label", "BYTES", (-1,)),), max_batch_size=8
)


class UnusedRunner:
    """The runner a LoadedVersion holds; fast_table never runs a model."""

    async def run(self, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> RunResult:
        raise AssertionError("fast_table must not run the model")

    def close(self) -> None:
        pass


def make_loaded(
    model: str = "m",
    version: int = 1,
    signature: ModelSignature = NUMERIC,
    config: ModelConfig | None = None,
    policy: BatchPolicy | None = None,
) -> LoadedVersion:
    config = ModelConfig() if config is None else config
    policy = BatchPolicy(max_batch_size=signature.max_batch_size) if policy is None else policy
    recorder = ServerMetrics(CollectorRegistry()).recorder(model, version, VersionStatistics())
    runner = UnusedRunner()
    batcher = DynamicBatcher(runner, policy, f"{model}:{version}", recorder.executed)  # never started
    return LoadedVersion(model, version, signature, config, runner, batcher, ("CPUExecutionProvider",), recorder)


def make_record(
    name: str,
    loaded: Mapping[int, LoadedVersion],
    routing: RoutingTable | str | None = "default",
) -> ModelRecord:
    """A record as the repository publishes it; routing "default" = the table a config without [routing] gets."""
    table = default_table(RoutingConfig(), name, loaded.keys()) if routing == "default" else routing
    assert not isinstance(table, str)
    return ModelRecord(name, ModelConfig(), loaded, routing=table)


def with_timeout(timeout_us: int) -> ModelConfig:
    return ModelConfig(batching=BatchingConfig(default_timeout_us=timeout_us))


# ------------------------------------------------------------------ eligible


def test_numeric_version_without_default_timeout_is_eligible() -> None:
    assert eligible(make_loaded(signature=NUMERIC, config=ModelConfig()))


def test_every_fixed_size_datatype_is_eligible() -> None:
    datatypes = [datatype for datatype in DATATYPES if datatype != "BYTES"]
    specs = tuple(TensorSpec(f"t{i}", datatype, (-1,)) for i, datatype in enumerate(datatypes))
    assert eligible(make_loaded(signature=ModelSignature(inputs=specs, outputs=specs, max_batch_size=4)))


def test_bytes_input_is_not_eligible() -> None:
    assert not eligible(make_loaded(signature=BYTES_INPUT))


def test_bytes_output_is_not_eligible() -> None:
    assert not eligible(make_loaded(signature=BYTES_OUTPUT))


@pytest.mark.parametrize("timeout_us", [1, 250_000])
def test_default_queue_timeout_is_eligible_and_in_the_row(timeout_us: int) -> None:
    loaded = make_loaded(config=with_timeout(timeout_us))
    assert eligible(loaded)
    versions, _ = fast_table([make_record("m", {1: loaded})], VersionKeys())
    assert versions[0][14] == timeout_us


# ------------------------------------------------------------------ unversioned_routes


def routes(record: Any, keys: VersionKeys | None = None) -> tuple[Any, ...]:
    return unversioned_routes(record, keys or VersionKeys())


def test_one_weighted_ready_version_takes_every_bucket() -> None:
    v1, v2 = make_loaded(version=1), make_loaded(version=2)
    table = build_table({1: 0, 2: 100}, {1, 2}, salt="m")
    keys = VersionKeys()
    primary, fallback, parameter, metadata, salt_crc, shadow = routes(make_record("m", {1: v1, 2: v2}, table), keys)
    assert primary == fallback == [(0, keys.key(v2))]
    assert (parameter, metadata, salt_crc, shadow) == ("", "", zlib.crc32(b"m"), 0.0)


def test_config_without_routing_sends_everything_to_the_highest_version() -> None:
    loaded = {1: make_loaded(version=1), 3: make_loaded(version=3)}
    keys = VersionKeys()
    primary, *_ = routes(make_record("m", loaded), keys)
    assert primary == [(0, keys.key(loaded[3]))]


def test_weighted_split_is_the_tables_layout_with_keys() -> None:
    loaded = {1: make_loaded(version=1), 2: make_loaded(version=2), 3: make_loaded(version=3)}
    table = build_table({1: 60, 2: 30, 3: 10}, {1, 2, 3}, salt="m")
    keys = VersionKeys()
    primary, fallback, *_ = routes(make_record("m", loaded, table), keys)
    assert table.primary is not None
    pairs = zip(table.primary.starts, table.primary.versions, strict=True)
    expected = [(start, keys.key(loaded[version])) for start, version in pairs]
    k1, k2, k3 = (keys.key(loaded[version]) for version in (1, 2, 3))
    assert primary == fallback == expected == [(0, k1), (6000, k2), (9000, k3)]


def test_sticky_key_comes_with_its_parameter_and_metadata_names_and_salt() -> None:
    loaded = {1: make_loaded(version=1)}
    table = build_table({1: 100}, {1}, salt="pepper", sticky_key="X-User")
    _, _, parameter, metadata, salt_crc, _ = routes(make_record("m", loaded, table))
    assert (parameter, metadata, salt_crc) == ("X-User", "x-user", zlib.crc32(b"pepper"))


@pytest.mark.parametrize(
    ("sticky_from", "parameter", "metadata"), [("parameter", "user", ""), ("metadata", "", "user")]
)
def test_sticky_from_limits_where_c_plus_plus_reads_the_key(sticky_from: str, parameter: str, metadata: str) -> None:
    loaded = {1: make_loaded(version=1)}
    table = build_table({1: 100}, {1}, salt="m", sticky_key="user", sticky_from=sticky_from)
    primary, _, read_parameter, read_metadata, _, _ = routes(make_record("m", loaded, table))
    assert primary and (read_parameter, read_metadata) == (parameter, metadata)


def test_shadow_fraction_comes_with_the_layouts() -> None:
    loaded = {1: make_loaded(version=1), 2: make_loaded(version=2)}
    config = RoutingConfig(weights={1: 100}, shadow=ShadowConfig(version=2, fraction=0.1))
    table = default_table(config, "m", loaded.keys())
    assert table.shadow_version == 2
    keys = VersionKeys()
    primary, fallback, *_, shadow = routes(make_record("m", loaded, table), keys)
    assert primary == fallback == [(0, keys.key(loaded[1]))]
    assert shadow == 0.1


def test_shadow_that_did_not_load_is_no_shadow() -> None:
    # build_table drops a shadow version that is not ready: the Python router copies nothing either.
    loaded = {1: make_loaded(version=1)}
    table = build_table({1: 100}, {1}, salt="m", shadow_version=2, shadow_fraction=1.0)
    assert table.shadow_version is None
    keys = VersionKeys()
    assert routes(make_record("m", loaded, table), keys)[0] == [(0, keys.key(loaded[1]))]


def test_weighted_version_not_ready_falls_back() -> None:
    loaded = {1: make_loaded(version=1), 2: make_loaded(version=2)}
    table = build_table({1: 50, 2: 50}, {1}, salt="m")  # 2 is weighted but not ready: the router falls back
    keys = VersionKeys()
    primary, fallback, *_ = routes(make_record("m", loaded, table), keys)
    assert primary == [(0, keys.key(loaded[1])), (5000, NOT_READY)]
    assert fallback == [(0, keys.key(loaded[1]))]


def test_routed_version_not_loaded_keeps_unversioned_requests_on_python() -> None:
    loaded = {1: make_loaded(version=1)}
    table = build_table({1: 0, 2: 100}, {1, 2}, salt="m")  # ready in the table, but not in the record
    assert routes(make_record("m", loaded, table)) == ([], [], "", "", 0, 0.0)


def test_routed_version_not_served_natively_keeps_unversioned_requests_on_python() -> None:
    loaded = {1: make_loaded(version=1), 2: make_loaded(version=2, signature=BYTES_OUTPUT)}
    table = build_table({1: 50, 2: 50}, {1, 2}, salt="m")
    assert routes(make_record("m", loaded, table)) == ([], [], "", "", 0, 0.0)


def test_no_weighted_version_falls_back_to_the_highest_ready_one() -> None:
    loaded = {1: make_loaded(version=1)}
    table = build_table({1: 0}, {1}, salt="m")
    keys = VersionKeys()
    assert routes(make_record("m", loaded, table), keys)[:2] == ([], [(0, keys.key(loaded[1]))])


def test_no_routing_table_or_no_ready_version_is_routed_by_python() -> None:
    assert routes(make_record("m", {}, None)) == ([], [], "", "", 0, 0.0)
    assert routes(make_record("m", {1: make_loaded()}, None)) == ([], [], "", "", 0, 0.0)
    nothing_ready = build_table({1: 100}, set(), salt="m")
    assert routes(make_record("m", {1: make_loaded()}, nothing_ready)) == ([], [], "", "", 0, 0.0)


# ------------------------------------------------------------------ fast_table


def test_version_row_carries_signature_and_policy() -> None:
    config = ModelConfig(batching=BatchingConfig(priority_levels=3, default_priority_level=2))
    policy = BatchPolicy(
        max_batch_size=8,
        merge=False,
        max_queue_delay_us=1500,
        preferred_batch_sizes=(2, 4),
        max_queue_size=77,
        instances=3,
        priority_levels=3,
    )
    loaded = make_loaded("clf", 7, NUMERIC, config, policy)
    keys = VersionKeys()
    versions, models = fast_table([make_record("clf", {7: loaded})], keys)
    key = keys.key(loaded)
    assert versions == [
        (
            key,
            "clf",
            "7",
            [("x", "FP32", [-1, 3]), ("mask", "BOOL", [-1, 3])],
            ["scores", "label"],
            8,
            False,
            False,
            77,
            3,
            [2, 4],
            1500,
            3,
            2,
            0,
        )
    ]
    row = versions[0]
    assert isinstance(row[3][0][2], list)
    assert isinstance(row[4], list)
    assert isinstance(row[10], list)
    assert models == [("clf", [("7", key)], [(0, key)], [(0, key)], "", "", zlib.crc32(b"clf"), 0.0)]
    assert keys.version(key) is loaded


def test_defaults_in_version_row() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("x", "INT32", (2,)),), outputs=(TensorSpec("y", "INT32", (2,)),), max_batch_size=0
    )
    loaded = make_loaded("plain", 1, signature)
    keys = VersionKeys()
    versions, _ = fast_table([make_record("plain", {1: loaded})], keys)
    assert versions == [
        (keys.key(loaded), "plain", "1", [("x", "INT32", [2])], ["y"], 0, True, True, 1024, 1, [], 0, 1, 1, 0)
    ]


def test_rows_for_every_eligible_version_and_pinned_lists() -> None:
    a1, a2, a3 = make_loaded("a", 1), make_loaded("a", 2, BYTES_OUTPUT), make_loaded("a", 3)
    b1 = make_loaded("b", 1)
    keys = VersionKeys()
    records = [make_record("a", {3: a3, 1: a1, 2: a2}), make_record("b", {1: b1})]
    versions, models = fast_table(records, keys)
    k_a1, k_a3, k_b1 = keys.key(a1), keys.key(a3), keys.key(b1)
    assert [(row[0], row[1], row[2]) for row in versions] == [(k_a1, "a", "1"), (k_a3, "a", "3"), (k_b1, "b", "1")]
    assert [row[:3] for row in models] == [
        ("a", [("1", k_a1), ("3", k_a3)], [(0, k_a3)]),
        ("b", [("1", k_b1)], [(0, k_b1)]),
    ]
    assert len({k_a1, k_a3, k_b1}) == 3
    assert a2 not in [keys.version(key) for key in keys.known()]  # the ineligible version got no key


def test_model_without_eligible_version_gets_no_model_row() -> None:
    text = make_loaded("text", 1, BYTES_INPUT)
    num = make_loaded("num", 1)
    keys = VersionKeys()
    versions, models = fast_table([make_record("text", {1: text}), make_record("num", {1: num})], keys)
    assert [row[1] for row in versions] == ["num"]
    assert [row[0] for row in models] == ["num"]
    assert keys.known() == [keys.key(num)]


def test_unloaded_model_gets_no_rows() -> None:
    versions, models = fast_table([make_record("gone", {}, None)], VersionKeys())
    assert versions == []
    assert models == []


def test_model_rows_carry_the_routing_tables_layouts() -> None:
    loaded = {1: make_loaded(version=1), 2: make_loaded(version=2)}
    keys = VersionKeys()
    k1, k2 = keys.key(loaded[1]), keys.key(loaded[2])
    split = build_table({1: 90, 2: 10}, {1, 2}, salt="m")
    sticky = build_table({2: 100}, {1, 2}, salt="m", sticky_key="user")
    _, models = fast_table([make_record("m", loaded, split)], keys)
    assert models == [
        ("m", [("1", k1), ("2", k2)], [(0, k1), (9000, k2)], [(0, k1), (9000, k2)], "", "", split.salt_crc, 0.0)
    ]
    _, models = fast_table([make_record("m", loaded, sticky)], keys)
    assert models == [("m", [("1", k1), ("2", k2)], [(0, k2)], [(0, k2)], "user", "user", sticky.salt_crc, 0.0)]


def test_unversioned_requests_stay_on_python_when_the_routed_version_is_not_eligible() -> None:
    v1, v2 = make_loaded(version=1), make_loaded(version=2, signature=BYTES_INPUT)
    keys = VersionKeys()
    _, models = fast_table([make_record("m", {1: v1, 2: v2})], keys)  # version 2 takes every unversioned request
    assert models == [("m", [("1", keys.key(v1))], [], [], "", "", 0, 0.0)]


def test_same_object_keeps_its_key_across_calls() -> None:
    loaded = make_loaded()
    keys = VersionKeys()
    first, _ = fast_table([make_record("m", {1: loaded})], keys)
    second, models = fast_table([make_record("m", {1: loaded})], keys)
    assert first[0][0] == second[0][0]
    key = first[0][0]
    assert [row[:3] for row in models] == [("m", [("1", key)], [(0, key)])]
    assert keys.known() == [first[0][0]]


def test_reload_gets_a_new_key() -> None:
    old, new = make_loaded(version=1), make_loaded(version=1)
    keys = VersionKeys()
    before, _ = fast_table([make_record("m", {1: old})], keys)
    after, models = fast_table([make_record("m", {1: new})], keys)
    assert before[0][0] != after[0][0]
    key = after[0][0]
    assert [row[:3] for row in models] == [("m", [("1", key)], [(0, key)])]
    assert keys.version(before[0][0]) is old  # still known until the caller forgets it
    assert keys.version(after[0][0]) is new


# ------------------------------------------------------------------ VersionKeys


def test_version_returns_the_keyed_object() -> None:
    keys = VersionKeys()
    a, b = make_loaded(version=1), make_loaded(version=2)
    key_a, key_b = keys.key(a), keys.key(b)
    assert key_a != key_b
    assert keys.key(a) == key_a
    assert keys.version(key_a) is a
    assert keys.version(key_b) is b
    assert keys.version(12345) is None
    assert sorted(keys.known()) == sorted([key_a, key_b])


def test_forget_drops_the_key_and_a_later_key_is_fresh() -> None:
    keys = VersionKeys()
    loaded, other = make_loaded(version=1), make_loaded(version=2)
    key = keys.key(loaded)
    other_key = keys.key(other)
    keys.forget(key)
    assert keys.version(key) is None
    assert keys.known() == [other_key]
    fresh = keys.key(loaded)
    assert fresh not in (key, other_key)
    assert keys.version(fresh) is loaded
    assert keys.version(other_key) is other


def test_forget_unknown_key_is_harmless() -> None:
    keys = VersionKeys()
    loaded = make_loaded()
    key = keys.key(loaded)
    keys.forget(key + 100)
    keys.forget(key)
    keys.forget(key)
    assert keys.known() == []
