"""Tracing and access-log settings: OTEL_* / SERVER_LOG_ACCESS_SAMPLE, their flags, and what they build."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic import ValidationError

from server import cli
from server.app import App
from server.settings import TracingSettings, load_settings
from server.tracing.sampling import RATIO_SPACE, SamplingPolicy
from server.tracing.setup import build_tracing
from server.workers.supervisor import worker_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("SERVER_", "OTEL_")):
            monkeypatch.delenv(key)


def test_off_by_default() -> None:
    settings = load_settings()
    assert settings.tracing.traces_exporter == "none"
    assert settings.tracing.traces_sampler == "parentbased_always_on"
    assert settings.tracing.otlp_endpoint == "http://localhost:4317"
    assert settings.log.access_sample == 0.0


def test_the_standard_otel_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.01")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "scoring")
    monkeypatch.setenv("SERVER_LOG_ACCESS_SAMPLE", "0.5")
    for settings in (load_settings(), cli.settings_from_args([])):
        tracing = settings.tracing
        assert (tracing.traces_exporter, tracing.otlp_endpoint) == ("otlp", "http://collector:4317")
        assert (tracing.traces_sampler, tracing.traces_sampler_arg) == ("parentbased_traceidratio", 0.01)
        assert tracing.service_name == "scoring"
        assert settings.log.access_sample == 0.5
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317")
    assert load_settings().tracing.otlp_endpoint == "http://traces:4317"  # the per-signal variable wins


def test_flags_win_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces:4317")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    monkeypatch.setenv("SERVER_LOG_ACCESS_SAMPLE", "0.5")
    settings = cli.settings_from_args(
        [
            "--traces-exporter", "otlp",
            "--otlp-endpoint", "http://127.0.0.1:4317",
            "--traces-sampler", "traceidratio",
            "--traces-sampler-arg", "0.25",
            "--service-name", "scoring",
            "--access-log-sample", "0.01",
        ]
    )  # fmt: skip
    tracing = settings.tracing
    assert (tracing.traces_exporter, tracing.otlp_endpoint) == ("otlp", "http://127.0.0.1:4317")
    assert (tracing.traces_sampler, tracing.traces_sampler_arg) == ("traceidratio", 0.25)
    assert tracing.service_name == "scoring"
    assert settings.log.access_sample == 0.01


@pytest.mark.parametrize(
    "argv",
    [
        ["--traces-exporter", "jaeger"],
        ["--traces-sampler", "jaeger_remote"],
        ["--traces-sampler-arg", "1.5"],
        ["--access-log-sample", "-0.1"],
        ["--access-log-sample", "2"],
    ],
)
def test_invalid_values_are_refused(argv: list[str]) -> None:
    with pytest.raises(ValidationError):
        cli.settings_from_args(argv)


def test_help_names_the_otel_variables(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    with pytest.raises(SystemExit):
        cli.build_parser().parse_args(["--help"])
    text = capsys.readouterr().out
    for env in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_TRACES_SAMPLER_ARG"):
        assert env in text, env
    assert "SERVER_LOG_ACCESS_SAMPLE" in text


def test_each_worker_gets_the_tracing_settings() -> None:
    settings = cli.settings_from_args(["--workers", "2", "--traces-exporter", "otlp", "--access-log-sample", "0.1"])
    worker = worker_settings(settings, 8001)
    assert worker.tracing == settings.tracing and worker.log.access_sample == 0.1


def test_tracing_off_builds_no_provider(tmp_path: Path) -> None:
    assert build_tracing(TracingSettings()) is None
    app = App(load_settings({"model_repository": tmp_path}))
    assert app.tracing is None


def test_tracing_on_builds_a_provider_of_its_own() -> None:
    tracing = build_tracing(
        TracingSettings(traces_exporter="console", traces_sampler="parentbased_traceidratio", traces_sampler_arg=0.5)
    )
    assert tracing is not None
    try:
        assert isinstance(tracing.provider, TracerProvider)
        assert tracing.provider.resource.attributes["service.name"] == "oip-inference-server"
        assert tracing.provider.resource.attributes["process.pid"] == os.getpid()
        assert tracing.requests._policy == SamplingPolicy(RATIO_SPACE // 2, parent_based=True)
    finally:
        tracing.shutdown()
