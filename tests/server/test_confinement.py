"""The repository's path rule in pieces: the `model_filename` validator, RepositoryConfinement, reference profiles.

The whole rule on a real server is in tests/integration/test_repository_paths.py.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from server.cli import settings_from_args
from server.confinement import ALLOW_FLAG, OutsideRepositoryError, RepositoryConfinement
from server.errors import ModelLoadError
from server.model_config import ModelConfig, load_model_config
from server.predictions.profile import PROFILE_FILE
from server.versions.references import read_reference


@pytest.mark.parametrize("filename", ["model.onnx", "sub/model.onnx", "a.b/c..d.onnx", "./model.onnx"])
def test_model_filename_may_name_a_file_below_the_version_directory(filename: str) -> None:
    assert ModelConfig(model_filename=filename).model_filename == filename


@pytest.mark.parametrize(
    "filename", ["", "../x.onnx", "../../x.onnx", "sub/../../x.onnx", "/etc/passwd", "..", "a\\..\\x.onnx", "a\0b"]
)
def test_model_filename_may_not_leave_the_version_directory(tmp_path: Path, filename: str) -> None:
    (tmp_path / "config.toml").write_text(f"model_filename = {json.dumps(filename)}\n")  # a TOML basic string
    with pytest.raises(ModelLoadError, match="model_filename") as raised:
        load_model_config(tmp_path)
    assert "--allow-external-model-files" in str(raised.value)


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(repository, a directory beside it) with one file in each."""
    repository, outside = tmp_path / "models", tmp_path / "elsewhere"
    (repository / "m" / "1").mkdir(parents=True)
    outside.mkdir()
    (repository / "m" / "1" / "model.onnx").write_bytes(b"inside")
    (outside / "model.onnx").write_bytes(b"outside")
    return repository, outside


def test_a_file_inside_passes_and_a_symlink_out_is_refused_naming_path_target_and_flag(
    layout: tuple[Path, Path],
) -> None:
    repository, outside = layout
    rule = RepositoryConfinement(repository)
    rule.check(repository / "m" / "1" / "model.onnx", "model file")
    link = repository / "m" / "1" / "linked.onnx"
    link.symlink_to(outside / "model.onnx")
    with pytest.raises(OutsideRepositoryError) as raised:
        rule.check(link, "model file")
    message = str(raised.value)
    assert str(link) in message and str(outside / "model.onnx") in message and ALLOW_FLAG in message


def test_symlinks_that_stay_inside_and_a_symlinked_root_pass(layout: tuple[Path, Path], tmp_path: Path) -> None:
    repository, _ = layout
    (repository / "m" / "2").symlink_to(repository / "m" / "1")
    RepositoryConfinement(repository).check(repository / "m" / "2" / "model.onnx", "model file")
    root_link = tmp_path / "models-link"
    root_link.symlink_to(repository)
    RepositoryConfinement(root_link).check(root_link / "m" / "1" / "model.onnx", "model file")


def test_the_allow_flag_lifts_the_rule_and_a_loop_is_refused(layout: tuple[Path, Path]) -> None:
    repository, outside = layout
    RepositoryConfinement(repository, allow_external=True).check(outside / "model.onnx", "model file")
    loop = repository / "m" / "loop"
    loop.symlink_to(loop)
    with pytest.raises(OutsideRepositoryError):
        RepositoryConfinement(repository).check(loop / "model.onnx", "model file")


def test_a_reference_profile_outside_the_repository_is_not_read(
    layout: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    repository, outside = layout
    (outside / PROFILE_FILE).write_text("not a profile")
    (repository / "m" / "1" / PROFILE_FILE).symlink_to(outside / PROFILE_FILE)
    model_file = repository / "m" / "1" / "model.onnx"
    with caplog.at_level(logging.WARNING, logger="server.versions.references"):
        assert read_reference(model_file.parent, "m:1", RepositoryConfinement(repository)) is None
    refused = [str(r.__dict__.get("error", "")) for r in caplog.records]
    assert any("outside the model repository" in error for error in refused)
    caplog.clear()
    # Allowed, the same file is read (and, being no profile, rejected for what it contains).
    with caplog.at_level(logging.WARNING, logger="server.versions.references"):
        assert read_reference(model_file.parent, "m:1", RepositoryConfinement(repository, allow_external=True)) is None
    read = [str(r.__dict__.get("error", "")) for r in caplog.records]
    assert read and not any("outside the model repository" in error for error in read)


def test_the_rule_is_on_by_default_and_lifted_by_the_flag_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repository = ["--model-repository", str(tmp_path)]
    assert settings_from_args(repository).allow_external_model_files is False
    assert settings_from_args([*repository, "--allow-external-model-files"]).allow_external_model_files is True
    monkeypatch.setenv("SERVER_ALLOW_EXTERNAL_MODEL_FILES", "true")
    assert settings_from_args(repository).allow_external_model_files is True
