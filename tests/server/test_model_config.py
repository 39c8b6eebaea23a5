"""server.model_config (config.toml) and server.repository.policy (version selection)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from server.errors import ModelLoadError
from server.model_config import CONFIG_FILE, ModelConfig, VersionPolicy, load_model_config
from server.repository.policy import select_versions


def _write_config(model_dir: Path, text: str) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    path = model_dir / CONFIG_FILE
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------- config


def test_defaults_without_config_file(tmp_path: Path) -> None:
    config = load_model_config(tmp_path)
    assert config == ModelConfig()
    assert config.max_batch_size is None
    assert config.platform == "onnxruntime_onnx"
    assert config.model_filename == "model.onnx"
    assert config.versions.policy == "all"
    assert config.versions.latest == 1
    assert config.versions.versions == ()
    assert config.runtime.providers is None
    assert config.runtime.intra_op_threads is None
    assert config.runtime.inter_op_threads is None
    assert config.runtime.graph_optimization == "all"
    assert config.instances.count == 1


def test_empty_config_file_gives_defaults(tmp_path: Path) -> None:
    _write_config(tmp_path, "")
    assert load_model_config(tmp_path) == ModelConfig()


def test_full_config(tmp_path: Path) -> None:
    _write_config(
        tmp_path,
        """
max_batch_size = 8
platform = "onnxruntime_onnx"
model_filename = "net.onnx"

[versions]
policy = "specific"
versions = [1, 3]

[runtime]
providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
intra_op_threads = 2
inter_op_threads = 1
graph_optimization = "basic"

[instances]
count = 3
""",
    )
    config = load_model_config(tmp_path)
    assert config.max_batch_size == 8
    assert config.model_filename == "net.onnx"
    assert config.versions.policy == "specific"
    assert config.versions.versions == (1, 3)
    assert config.runtime.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")
    assert config.runtime.intra_op_threads == 2
    assert config.runtime.inter_op_threads == 1
    assert config.runtime.graph_optimization == "basic"
    assert config.instances.count == 3


def test_config_is_frozen(tmp_path: Path) -> None:
    _write_config(tmp_path, "max_batch_size = 4\n")
    config = load_model_config(tmp_path)
    with pytest.raises(ValidationError):
        config.max_batch_size = 5  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("max_batch = 4\n", "max_batch"),
        ("[runtime]\nprovider = ['CPUExecutionProvider']\n", "runtime.provider"),
        ("[versions]\npolicy = 'all'\nlatests = 2\n", "versions.latests"),
        ("[dynamic_batching]\nmax_delay_ms = 1\n", "dynamic_batching"),
    ],
)
def test_unknown_key_is_named(tmp_path: Path, text: str, key: str) -> None:
    path = _write_config(tmp_path, text)
    with pytest.raises(ModelLoadError) as info:
        load_model_config(tmp_path)
    message = str(info.value)
    assert str(path) in message
    assert key in message


def test_invalid_toml_mentions_path(tmp_path: Path) -> None:
    path = _write_config(tmp_path, "max_batch_size = = 4\n")
    with pytest.raises(ModelLoadError, match="is not valid TOML") as info:
        load_model_config(tmp_path)
    assert str(path) in str(info.value)


def test_non_utf8_config_is_a_load_error(tmp_path: Path) -> None:
    tmp_path.joinpath(CONFIG_FILE).write_bytes(b"platform = '\xff\xfe'\n")
    with pytest.raises(ModelLoadError, match="is not valid TOML"):
        load_model_config(tmp_path)


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("max_batch_size = -1\n", "max_batch_size"),
        ("max_batch_size = 'eight'\n", "max_batch_size"),
        ("[versions]\npolicy = 'newest'\n", "versions.policy"),
        ("[versions]\npolicy = 'latest'\nlatest = 0\n", "versions.latest"),
        ("[runtime]\ngraph_optimization = 'max'\n", "runtime.graph_optimization"),
        ("[instances]\ncount = 0\n", "instances.count"),
        ("[instances]\ncount = 65\n", "instances.count"),
    ],
)
def test_invalid_values_name_the_field(tmp_path: Path, text: str, where: str) -> None:
    _write_config(tmp_path, text)
    with pytest.raises(ModelLoadError, match="is invalid") as info:
        load_model_config(tmp_path)
    assert where in str(info.value)


def test_specific_policy_without_versions(tmp_path: Path) -> None:
    _write_config(tmp_path, "[versions]\npolicy = 'specific'\n")
    with pytest.raises(ModelLoadError, match='policy "specific" needs a non-empty `versions` list'):
        load_model_config(tmp_path)


def test_specific_policy_without_versions_direct() -> None:
    with pytest.raises(ValidationError, match="non-empty"):
        VersionPolicy(policy="specific")


# ---------------------------------------------------------------------- policy


def test_select_all_sorted_and_deduplicated() -> None:
    assert select_versions(VersionPolicy(), [3, 1, 2, 3]) == [1, 2, 3]


def test_select_all_empty() -> None:
    assert select_versions(VersionPolicy(), []) == []


@pytest.mark.parametrize(("latest", "expected"), [(1, [7]), (2, [3, 7]), (5, [1, 2, 3, 7])])
def test_select_latest(latest: int, expected: list[int]) -> None:
    assert select_versions(VersionPolicy(policy="latest", latest=latest), [2, 7, 1, 3]) == expected


def test_select_latest_on_nothing() -> None:
    assert select_versions(VersionPolicy(policy="latest", latest=2), []) == []


def test_select_specific_skips_missing() -> None:
    policy = VersionPolicy(policy="specific", versions=(4, 1, 9))
    assert select_versions(policy, [1, 2, 3, 4]) == [1, 4]


def test_select_specific_none_on_disk() -> None:
    policy = VersionPolicy(policy="specific", versions=(9,))
    assert select_versions(policy, [1, 2]) == []


def test_select_accepts_dict_keys() -> None:
    assert select_versions(VersionPolicy(policy="latest"), {5: "a", 2: "b"}.keys()) == [5]
