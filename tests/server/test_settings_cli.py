"""server.settings (SERVER_* environment) and server.cli (flags, --help, exit codes)."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from server import cli
from server.cli import build_parser
from server.settings import GrpcSettings, ServerSettings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No SERVER_* variable from the outer environment leaks into these tests."""
    for key in list(os.environ):
        if key.startswith("SERVER_"):
            monkeypatch.delenv(key)


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """cli.main configures the root logger; put pytest's handlers and level back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ---------------------------------------------------------------------- settings


def test_defaults() -> None:
    settings = load_settings()
    assert settings.model_repository == Path("models")
    assert settings.grpc.port == 8001
    assert settings.grpc.host == "0.0.0.0"
    assert settings.http.port == 8002
    assert settings.http.enabled is True
    assert settings.runtime.providers == ()
    assert settings.runtime.inference_threads == min(32, (os.cpu_count() or 1) + 4)
    assert settings.runtime.gil_switch_interval_us == 200
    assert settings.log.level == "INFO"
    assert settings.log.format == "json"
    assert settings.use_uvloop is True


def test_env_vars_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVER_GRPC_PORT", "9100")
    monkeypatch.setenv("SERVER_MODEL_REPOSITORY", str(tmp_path))
    monkeypatch.setenv("SERVER_RUNTIME_INFERENCE_THREADS", "3")
    monkeypatch.setenv("SERVER_LOG_FORMAT", "text")
    monkeypatch.setenv("SERVER_HTTP_ENABLED", "false")
    monkeypatch.setenv("SERVER_RUNTIME_PROVIDERS", '["CPUExecutionProvider"]')

    for settings in (load_settings(), cli.settings_from_args([])):
        assert settings.grpc.port == 9100
        assert settings.model_repository == tmp_path
        assert settings.runtime.inference_threads == 3
        assert settings.log.format == "text"
        assert settings.http.enabled is False
        assert settings.runtime.providers == ("CPUExecutionProvider",)


def test_flags_override_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SERVER_GRPC_PORT", "9100")
    monkeypatch.setenv("SERVER_GRPC_HOST", "10.0.0.1")
    monkeypatch.setenv("SERVER_MODEL_REPOSITORY", "/from/env")
    monkeypatch.setenv("SERVER_RUNTIME_INFERENCE_THREADS", "3")
    monkeypatch.setenv("SERVER_RUNTIME_INTRA_OP_THREADS", "2")

    settings = cli.settings_from_args(
        ["--grpc-port", "0", "--model-repository", str(tmp_path), "--inference-threads", "7", "--no-uvloop"]
    )

    assert settings.grpc.port == 0
    assert settings.model_repository == tmp_path
    assert settings.runtime.inference_threads == 7
    assert settings.use_uvloop is False
    # Unset flags fall through to the environment.
    assert settings.grpc.host == "10.0.0.1"
    assert settings.runtime.intra_op_threads == 2


def test_every_flag_reaches_its_field(tmp_path: Path) -> None:
    cert, key, ca = (tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem"))
    settings = cli.settings_from_args(
        [
            "--model-repository", str(tmp_path),
            "--host", "127.0.0.1",
            "--grpc-port", "1234",
            "--metrics-host", "127.0.0.2",
            "--metrics-port", "4321",
            "--max-message-bytes", str(8 * 1024 * 1024),
            "--tls-certificate", str(cert),
            "--tls-private-key", str(key),
            "--tls-client-ca", str(ca),
            "--graceful-shutdown", "2.5",
            "--inference-threads", "5",
            "--intra-op-threads", "4",
            "--inter-op-threads", "3",
            "--gil-switch-interval-us", "750",
            "--log-level", "DEBUG",
            "--log-format", "text",
        ]
    )  # fmt: skip
    assert settings.model_repository == tmp_path
    assert (settings.grpc.host, settings.grpc.port) == ("127.0.0.1", 1234)
    assert (settings.http.host, settings.http.port) == ("127.0.0.2", 4321)
    assert settings.grpc.max_message_bytes == 8 * 1024 * 1024
    tls = settings.grpc
    assert (tls.tls_certificate, tls.tls_private_key, tls.tls_client_ca) == (cert, key, ca)
    assert settings.grpc.graceful_shutdown_s == 2.5
    assert settings.runtime.inference_threads == 5
    assert (settings.runtime.intra_op_threads, settings.runtime.inter_op_threads) == (4, 3)
    assert settings.runtime.gil_switch_interval_us == 750
    assert (settings.log.level, settings.log.format) == ("DEBUG", "text")


def test_providers_flag_parsed_into_tuple() -> None:
    settings = cli.settings_from_args(["--providers", "CUDAExecutionProvider, CPUExecutionProvider,"])
    assert settings.runtime.providers == ("CUDAExecutionProvider", "CPUExecutionProvider")


def test_settings_are_frozen() -> None:
    settings = cli.settings_from_args([])
    with pytest.raises(ValidationError, match="frozen"):
        settings.model_repository = Path("elsewhere")  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.grpc.port = 1  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        settings.runtime.providers = ("CPUExecutionProvider",)  # type: ignore[misc]


def test_invalid_port() -> None:
    with pytest.raises(ValidationError, match="port"):
        cli.settings_from_args(["--grpc-port", "70000"])
    with pytest.raises(ValidationError, match="port"):
        load_settings({"http": {"port": -1}})


def test_invalid_port_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_GRPC_PORT", "70000")
    with pytest.raises(ValidationError, match="port"):
        load_settings()


def test_tls_certificate_without_key() -> None:
    with pytest.raises(ValidationError, match="tls_certificate and tls_private_key must be given together"):
        cli.settings_from_args(["--tls-certificate", "cert.pem"])
    with pytest.raises(ValidationError, match="must be given together"):
        GrpcSettings(tls_private_key=Path("key.pem"))


def test_tls_client_ca_without_certificate() -> None:
    with pytest.raises(ValidationError, match="tls_client_ca needs tls_certificate"):
        cli.settings_from_args(["--tls-client-ca", "ca.pem"])


@pytest.mark.parametrize(
    "argv",
    [
        ["--log-level", "TRACE"],
        ["--log-format", "xml"],
        ["--inference-threads", "0"],
        ["--max-message-bytes", "1024"],
        ["--graceful-shutdown", "-1"],
        ["--gil-switch-interval-us", "0"],
    ],
)
def test_invalid_values(argv: list[str]) -> None:
    with pytest.raises(ValidationError):
        cli.settings_from_args(argv)


def test_unknown_top_level_override_rejected() -> None:
    with pytest.raises(ValidationError):
        ServerSettings(no_such_setting=1)  # type: ignore[call-arg]


# --------------------------------------------------------------------------- cli


def test_help_lists_every_flag_and_env_var(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    flags = [flag for flag, *_ in cli._FLAGS] + ["--providers", "--no-uvloop", "--version"]
    for flag in flags:
        assert flag in text, flag
    for env in (
        "SERVER_GRPC_PORT",
        "SERVER_MODEL_REPOSITORY",
        "SERVER_RUNTIME_INFERENCE_THREADS",
        "SERVER_HTTP_PORT",
        "SERVER_GRPC_TLS_CERTIFICATE",
        "SERVER_LOG_LEVEL",
        "SERVER_RUNTIME_PROVIDERS",
    ):
        assert env in text, env
    assert "default 8001" in text


def test_help_through_main(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--help"])
    assert info.value.code == 0
    assert "--grpc-port" in capsys.readouterr().out


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0
    assert "0.1.0" in capsys.readouterr().out


@pytest.mark.usefixtures("restore_logging")
def test_main_missing_repository_returns_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "missing"
    assert cli.main(["--model-repository", str(missing), "--log-format", "text"]) == 2
    err = capsys.readouterr().err
    assert "model repository is not a directory" in err
    assert str(missing) in err


def test_main_invalid_settings_returns_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--grpc-port", "70000"]) == 2
    assert "invalid settings" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["--grpc-port", "abc"], ["--no-such-flag"], ["--inference-threads", "1.5"]])
def test_bad_flag_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        cli.main(argv)
    assert info.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_every_flag_says_its_default_in_help() -> None:
    for action in build_parser()._actions:
        if action.option_strings and action.dest not in ("help", "version"):
            assert "default" in (action.help or ""), action.option_strings
