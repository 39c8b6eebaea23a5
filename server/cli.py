"""`python -m server`: parse flags, configure logging, run the app (or --workers N of them) until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from server import __version__
from server.lifecycle import StartupError, run_loop, serve
from server.settings import SECTIONS, ServerSettings, load_settings, unknown_environment
from server.suggestions import describe
from server.telemetry.logging import configure_logging
from server.workers.supervisor import run_supervisor

log = logging.getLogger("server")

#: flag -> (settings section or "" for top level, field, type, help). The help gains the
#: environment variable and the default from the settings model.
_FLAGS: tuple[tuple[str, str, str, Any, str], ...] = (
    ("--model-repository", "", "model_repository", Path, "model repository directory, or one model's directory"),
    ("--model-name", "", "model_name", str, "name of the model when --model-repository is one model's directory"),
    ("--host", "grpc", "host", str, "gRPC bind address"),
    ("--grpc-port", "grpc", "port", int, "gRPC port, 0 = any free port"),
    ("--metrics-host", "http", "host", str, "metrics/health HTTP bind address"),
    ("--metrics-port", "http", "port", int, "metrics/health HTTP port, 0 = any free port"),
    ("--frontend", "grpc", "frontend", str, "native (gRPC C++, built by `make native`), python (grpc.aio) or auto"),
    ("--max-message-bytes", "grpc", "max_message_bytes", int, "largest gRPC message accepted or sent"),
    ("--max-inflight-bytes", "grpc", "max_inflight_bytes", int, "total ModelInfer request bytes held at once"),
    ("--max-concurrent-rpcs", "grpc", "max_concurrent_rpcs", int, "inference calls and open streams handled at once"),
    ("--max-pending-rpcs", "grpc", "max_pending_rpcs", int, "calls grpc-core queues before the loop takes them"),
    ("--tls-certificate", "grpc", "tls_certificate", Path, "PEM certificate chain; serves TLS"),
    ("--tls-private-key", "grpc", "tls_private_key", Path, "PEM private key of the certificate"),
    ("--tls-client-ca", "grpc", "tls_client_ca", Path, "require client certificates signed by this CA"),
    ("--graceful-shutdown", "grpc", "graceful_shutdown_s", float, "seconds in-flight requests get on SIGTERM"),
    ("--drain-delay", "grpc", "drain_delay_s", float, "seconds served, reported not ready, before draining"),
    ("--inference-threads", "runtime", "inference_threads", int, "threads running ONNX Runtime (at least)"),
    ("--intra-op-threads", "runtime", "intra_op_threads", int, "ONNX Runtime intra-op threads, 0 = auto"),
    ("--inter-op-threads", "runtime", "inter_op_threads", int, "ONNX Runtime inter-op threads, 0 = auto"),
    ("--compute-nice", "runtime", "compute_nice", int, "nice steps compute threads run below the event loop"),
    ("--heap-trim-mib", "runtime", "heap_trim_mib", int, "trim the heap past this much freed memory, 0 = never"),
    ("--gil-switch-interval-us", "runtime", "gil_switch_interval_us", int, "GIL hand-over interval, microseconds"),
    ("--log-level", "log", "level", str, "DEBUG, INFO, WARNING or ERROR"),
    ("--log-format", "log", "format", str, "json or text"),
    ("--workers", "", "workers", int, "server processes sharing the gRPC port (SO_REUSEPORT), 1-64"),
    ("--state-dir", "", "state_dir", Path, "directory for persisted routing state (rollbacks, admin weights)"),
    ("--access-log-sample", "log", "access_sample", float, "share of successful requests logged (server.access), 0-1"),
    ("--traces-exporter", "tracing", "traces_exporter", str, "none (tracing off), otlp (gRPC) or console"),
    ("--otlp-endpoint", "tracing", "exporter_otlp_traces_endpoint", str, "OTLP gRPC collector, e.g. http://host:4317"),
    ("--traces-sampler", "tracing", "traces_sampler", str, "e.g. parentbased_traceidratio, always_on, always_off"),
    ("--traces-sampler-arg", "tracing", "traces_sampler_arg", float, "ratio of the *traceidratio samplers, 0-1"),
    ("--service-name", "tracing", "service_name", str, "service.name of the exported spans"),
    ("--admin", "admin", "mode", str, "on or off: off refuses every admin RPC (repository load/unload, routing admin)"),
    ("--admin-token-file", "admin", "token_file", Path, "file with the bearer token admin RPCs must send"),
    ("--admin-port", "admin", "port", int, "serve the admin RPCs on their own listener at this port (0 = any free)"),
    ("--admin-host", "admin", "host", str, "bind address of the admin listener (default: the gRPC host)"),
)


def _help(section: str, field: str, text: str) -> str:
    model = SECTIONS[section] if section else ServerSettings
    info = model.model_fields[field]
    env = f"{model.model_config.get('env_prefix', '')}{field.upper()}"  # SERVER_GRPC_PORT, OTEL_SERVICE_NAME
    default = "computed" if info.default_factory is not None else info.default
    return f"{text} [env {env}; default {default}]"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m server",
        description="Open Inference Protocol (KServe V2) gRPC server for ONNX models. "
        "Each flag can also be set by the environment variable in brackets; flags win.",
    )
    for flag, section, field, kind, text in _FLAGS:
        dest = flag.lstrip("-").replace("-", "_")
        parser.add_argument(flag, dest=dest, type=kind, default=None, help=_help(section, field, text))
    parser.add_argument(
        "--providers",
        default=None,
        help="comma-separated ONNX Runtime execution providers in order of preference "
        "[SERVER_RUNTIME_PROVIDERS as a JSON list; default CUDA if available, then CPU]",
    )
    parser.add_argument(
        "--admin-client-identity",
        action="append",
        default=None,
        metavar="NAME",
        help="a client certificate name (CN, subject or SAN) allowed admin RPCs under mTLS; repeatable "
        "[SERVER_ADMIN_CLIENT_IDENTITIES as a JSON list; default none]",
    )
    parser.add_argument(
        "--allow-unauthenticated-admin",
        action="store_true",
        help="serve admin RPCs without credentials on a non-loopback --host (logged as a warning) "
        "[SERVER_ADMIN_ALLOW_UNAUTHENTICATED; default False]",
    )
    parser.add_argument(
        "--allow-external-model-files",
        action="store_true",
        help="open model files (and reference profiles) that resolve, through symlinks, outside the model "
        "repository [SERVER_ALLOW_EXTERNAL_MODEL_FILES; default False]",
    )
    parser.add_argument(
        "--lenient-readiness",
        action="store_true",
        help="report ready once the repository was loaded, even if some model failed or none exists "
        "[SERVER_STRICT_READINESS=false; default: ready only while every model has a ready version]",
    )
    parser.add_argument(
        "--no-uvloop",
        action="store_true",
        help="use the standard asyncio event loop [SERVER_USE_UVLOOP=false; default uvloop]",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def settings_from_args(argv: Sequence[str] | None) -> ServerSettings:
    """Parse flags into settings; environment variables fill what flags leave unset."""
    args = vars(build_parser().parse_args(argv))
    overrides: dict[str, Any] = {section: {} for section in SECTIONS}
    for flag, section, field, _, _ in _FLAGS:
        value = args[flag.lstrip("-").replace("-", "_")]
        if section:
            overrides[section][field] = value
        else:
            overrides[field] = value
    if args["providers"]:
        overrides["runtime"]["providers"] = tuple(p.strip() for p in args["providers"].split(",") if p.strip())
    if args["admin_client_identity"]:
        overrides["admin"]["client_identities"] = tuple(args["admin_client_identity"])
    if args["allow_unauthenticated_admin"]:
        overrides["admin"]["allow_unauthenticated"] = True
    if args["allow_external_model_files"]:
        overrides["allow_external_model_files"] = True
    if args["lenient_readiness"]:
        overrides["strict_readiness"] = False
    if args["no_uvloop"]:
        overrides["use_uvloop"] = False
    return load_settings(overrides)


def _describe_settings_error(error: ValidationError) -> str:
    """The problems named as the user wrote them (flag and environment variable), with the value given."""
    section = next((name for name, model in SECTIONS.items() if model.__name__ == error.title), "")
    model = SECTIONS[section] if section else ServerSettings
    names = {}
    for flag, flag_section, field, _, _ in _FLAGS:
        if flag_section == section:
            env = f"{model.model_config.get('env_prefix', '')}{field.upper()}"
            names[field] = f"{flag} ({env})"
    return describe(error, model, names)


def _warn_unknown_environment() -> None:
    for name, guess in unknown_environment(os.environ).items():
        log.warning(
            "environment variable looks like a setting but names none; ignored",
            extra={"variable": name, "did_you_mean": guess},
        )


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = settings_from_args(argv)
    except ValidationError as exc:
        print(f"invalid settings: {_describe_settings_error(exc)}", file=sys.stderr)
        return 2
    configure_logging(settings.log.level, settings.log.format)
    _warn_unknown_environment()
    if not settings.model_repository.is_dir():
        log.error("model repository is not a directory", extra={"path": str(settings.model_repository)})
        return 2
    try:
        if settings.workers > 1:
            return run_supervisor(settings)
        run_loop(serve(settings), settings.use_uvloop)
    except StartupError:  # logged where it happened, before the stop that followed
        return 1
    except OSError as exc:
        log.error("server failed to start", extra={"error": str(exc)})
        return 1
    return 0
