"""--workers / SERVER_WORKERS, and the settings each worker process runs with."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from server import cli
from server.settings import load_settings
from server.workers.supervisor import worker_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("SERVER_"):
            monkeypatch.delenv(key)


def test_one_worker_by_default() -> None:
    assert load_settings().workers == 1
    assert cli.settings_from_args([]).workers == 1
    assert load_settings().grpc.reuse_port is False


def test_env_var_is_read_and_the_flag_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_WORKERS", "4")
    assert load_settings().workers == 4
    assert cli.settings_from_args([]).workers == 4
    assert cli.settings_from_args(["--workers", "8"]).workers == 8


@pytest.mark.parametrize("value", ["0", "65", "-1"])
def test_out_of_range_is_rejected(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValidationError, match="workers"):
        cli.settings_from_args(["--workers", value])
    monkeypatch.setenv("SERVER_WORKERS", value)
    with pytest.raises(ValidationError, match="workers"):
        load_settings()


def test_bounds_are_accepted() -> None:
    assert cli.settings_from_args(["--workers", "1"]).workers == 1
    assert cli.settings_from_args(["--workers", "64"]).workers == 64


def test_invalid_flag_through_main_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--workers", "0"]) == 2
    assert "invalid settings" in capsys.readouterr().err


def test_help_documents_the_flag(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    assert "--workers" in text
    assert "SERVER_WORKERS" in text
    assert "default 1]" in text


def test_worker_settings_share_the_port_and_drop_the_side_port(tmp_path: Path) -> None:
    settings = cli.settings_from_args(["--workers", "3", "--grpc-port", "0", "--model-repository", str(tmp_path)])
    child = worker_settings(settings, 51234)
    assert (child.grpc.port, child.grpc.reuse_port) == (51234, True)
    assert child.http.enabled is False
    assert child.workers == 1
    # Everything else is inherited unchanged, and the original is untouched (frozen).
    assert child.model_repository == tmp_path
    assert child.runtime == settings.runtime
    assert (settings.grpc.port, settings.grpc.reuse_port, settings.http.enabled) == (0, False, True)
