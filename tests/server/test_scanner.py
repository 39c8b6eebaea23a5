"""server.repository.scanner: model directories and their numbered versions on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.repository.scanner import ModelSource, list_models, scan_model


@pytest.fixture
def root(tmp_path: Path) -> Path:
    for name in ("resnet", "bert", "_builder", ".git", "__pycache__"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.md").write_text("not a model")
    (tmp_path / "model.onnx").write_bytes(b"")
    for version in ("1", "2", "10"):
        (tmp_path / "resnet" / version).mkdir()
    (tmp_path / "resnet" / "latest").mkdir()
    (tmp_path / "resnet" / "v3").mkdir()
    (tmp_path / "resnet" / "-1").mkdir()
    (tmp_path / "resnet" / "4").write_text("a file, not a version dir")
    (tmp_path / "resnet" / "config.toml").write_text("")
    return tmp_path


def test_list_models_skips_hidden_private_and_files(root: Path) -> None:
    assert list_models(root) == ["bert", "resnet"]


def test_list_models_sorted(tmp_path: Path) -> None:
    for name in ("zeta", "alpha", "Mid"):
        (tmp_path / name).mkdir()
    assert list_models(tmp_path) == ["Mid", "alpha", "zeta"]


def test_list_models_missing_root(tmp_path: Path) -> None:
    assert list_models(tmp_path / "missing") == []


def test_list_models_root_is_a_file(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_text("")
    assert list_models(path) == []


def test_scan_model_finds_numeric_version_dirs_only(root: Path) -> None:
    source = scan_model(root, "resnet")
    assert source is not None
    assert source == ModelSource(
        name="resnet",
        path=root / "resnet",
        versions={1: root / "resnet" / "1", 2: root / "resnet" / "2", 10: root / "resnet" / "10"},
    )
    assert all(isinstance(v, int) for v in source.versions)


def test_scan_model_without_versions(root: Path) -> None:
    source = scan_model(root, "bert")
    assert source is not None
    assert source.versions == {}


@pytest.mark.parametrize("name", ["missing", "README.md", "_builder", ".git", ""])
def test_scan_model_absent_or_not_a_model(root: Path, name: str) -> None:
    assert scan_model(root, name) is None


@pytest.mark.parametrize("name", ["..", ".", "resnet/1", "../resnet", "a/../resnet", "/etc", "sub/.."])
def test_scan_model_rejects_path_escapes(root: Path, name: str) -> None:
    assert scan_model(root, name) is None


def test_scan_model_dotdot_does_not_escape(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    (tmp_path / "1").mkdir()  # a "version" directory beside the repository
    assert scan_model(repo, "..") is None


def test_scan_model_missing_root(tmp_path: Path) -> None:
    assert scan_model(tmp_path / "missing", "resnet") is None


def test_scan_model_ignores_non_ascii_digit_dirs(tmp_path: Path) -> None:
    # "²".isdigit() is True but int("²") raises: such a directory is not a version.
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "\u00b2").mkdir()
    source = scan_model(tmp_path, "m")
    assert source is not None
    assert source.versions == {1: tmp_path / "m" / "1"}
