"""Typed, validated server settings: CLI flags override SERVER_* environment variables.

Each concern has its own section and environment prefix, e.g. SERVER_GRPC_PORT,
SERVER_RUNTIME_INFERENCE_THREADS, SERVER_MODEL_REPOSITORY. Settings are frozen
once loaded.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from server.suggestions import nearest


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, frozen=True, extra="forbid")


class GrpcSettings(BaseSettings):
    """The gRPC endpoint."""

    model_config = _section("SERVER_GRPC_")

    host: str = "0.0.0.0"
    """Interface to bind; 127.0.0.1 keeps the server local."""
    port: int = Field(8001, ge=0, le=65535)
    """gRPC port; 0 picks a free port (the bound port is logged)."""
    max_message_bytes: int = Field(100 * 1024 * 1024, ge=4 * 1024 * 1024, le=2**31 - 1)
    """Largest request or response message accepted or sent; grpc refuses a larger one with RESOURCE_EXHAUSTED.
    100 MiB sits between MLServer (gRPC's own 4 MiB unless set) and Triton (2 GiB, INT32_MAX)."""
    max_inflight_bytes: int = Field(1024 * 1024 * 1024, ge=4 * 1024 * 1024)
    """Total raw bytes of the ModelInfer requests the server holds at once (per process); a request that would pass
    it is refused with RESOURCE_EXHAUSTED before it is decoded. At least max_message_bytes."""
    max_concurrent_rpcs: int = Field(4096, ge=1)
    """Inference calls handled at once (ModelInfer calls plus open ModelStreamInfer streams, per process); more
    are refused with RESOURCE_EXHAUSTED."""
    max_pending_rpcs: int = Field(65536, ge=1)
    """Calls grpc-core may queue before the event loop picks them up. Past it, grpc-core itself cancels new calls
    (CANCELLED): keep it well above max_concurrent_rpcs so that overload is answered RESOURCE_EXHAUSTED instead."""
    tls_certificate: Path | None = None
    """PEM certificate chain; with tls_private_key, serves TLS instead of plaintext."""
    tls_private_key: Path | None = None
    """PEM private key for tls_certificate."""
    tls_client_ca: Path | None = None
    """PEM CA bundle; when set, clients must present a certificate it signed (mTLS)."""
    graceful_shutdown_s: float = Field(10.0, ge=0)
    """On SIGTERM, how long in-flight requests may take to finish before they are cancelled."""
    drain_delay_s: float = Field(0.0, ge=0)
    """On SIGTERM, how long to keep serving normally while already reporting not ready, before draining starts
    (a pre-stop delay: time for load balancers and Kubernetes endpoints to stop sending new requests)."""
    frontend: Literal["auto", "python", "native"] = "auto"
    """Who speaks gRPC: native (gRPC C++ from the oip_native extension, built by `make native`;
    docs/native-data-plane.md), python (grpc.aio, always available), or auto: native where the extension loads,
    else python. Both serve the same handlers with the same behaviour."""
    reuse_port: bool = False
    """Bind with SO_REUSEPORT so several processes share the port (set for each --workers process)."""

    @model_validator(mode="after")
    def _inflight_fits_a_message(self) -> GrpcSettings:
        if self.max_inflight_bytes < self.max_message_bytes:
            raise ValueError("max_inflight_bytes must be at least max_message_bytes, or the largest request never fits")
        return self

    @model_validator(mode="after")
    def _tls_pair(self) -> GrpcSettings:
        if (self.tls_certificate is None) != (self.tls_private_key is None):
            raise ValueError("tls_certificate and tls_private_key must be given together")
        if self.tls_client_ca is not None and self.tls_certificate is None:
            raise ValueError("tls_client_ca needs tls_certificate and tls_private_key")
        return self


class HttpSettings(BaseSettings):
    """The HTTP side port: Prometheus /metrics and /v2/health/{live,ready}."""

    model_config = _section("SERVER_HTTP_")

    host: str = "0.0.0.0"
    """Interface for the metrics and health port."""
    port: int = Field(8002, ge=0, le=65535)
    """Metrics/health port; 0 picks a free port."""
    enabled: bool = True
    """Serve the HTTP side port at all."""


def is_token_text(token: str) -> bool:
    """Whether `token` can travel in an HTTP/2 header as one bearer token: printable ASCII, no spaces."""
    return bool(token) and all("!" <= char <= "~" for char in token)


class AdminSettings(BaseSettings):
    """Access to the admin surface: RepositoryModelLoad/Unload and the RoutingAdmin service.

    With no credentials configured it is open on a loopback host and refused elsewhere.
    """

    model_config = _section("SERVER_ADMIN_")

    mode: Literal["on", "off"] = "on"
    """off: every admin RPC is refused with PERMISSION_DENIED, whatever the credentials."""
    token: SecretStr | None = None
    """Bearer token admin calls must send (`authorization: Bearer <token>`); prefer token_file."""
    token_file: Path | None = None
    """File holding the bearer token (surrounding whitespace ignored); read when the server starts."""
    client_identities: tuple[str, ...] = ()
    """Client certificate names (subject CN, full subject or a SAN) allowed admin access; needs tls_client_ca."""
    allow_unauthenticated: bool = False
    """Open the admin surface without credentials on a non-loopback host (logged as a warning)."""
    port: int | None = Field(None, ge=0, le=65535)
    """Serve the admin RPCs on a listener of their own at this port (0: any free port), which a firewall or
    NetworkPolicy can restrict; the gRPC port then refuses them. Unset: the gRPC port serves them too."""
    host: str | None = None
    """Bind address of the admin listener (with `port`); unset: the gRPC host."""

    def listener_host(self, grpc_host: str) -> str:
        """Where admin calls arrive: the admin listener's host, or the gRPC host when there is none."""
        return self.host if self.port is not None and self.host is not None else grpc_host

    @field_validator("token", "token_file", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # SERVER_ADMIN_TOKEN= (set but empty) means no token, not an empty one nobody can send.
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_source(self) -> AdminSettings:
        if self.token is not None and not is_token_text(self.token.get_secret_value()):
            raise ValueError("the admin token must be printable ASCII without spaces")
        if self.token is not None and self.token_file is not None:
            raise ValueError("give the admin token either as token or as token_file, not both")
        credentials = self.token is not None or self.token_file is not None or self.client_identities
        if credentials and self.allow_unauthenticated:
            raise ValueError("allow_unauthenticated contradicts a configured admin token or client identities")
        return self


class RuntimeSettings(BaseSettings):
    """ONNX Runtime defaults; a model's config.toml [runtime] section overrides them."""

    model_config = _section("SERVER_RUNTIME_")

    inference_threads: int = Field(default_factory=lambda: min(32, (os.cpu_count() or 1) + 4), ge=1)
    """Worker threads that run session.run (ONNX Runtime releases the GIL), at least: the pool grows to one
    thread per loaded instance, so no model's execution waits for a thread behind another model's."""
    load_threads: int = Field(2, ge=1)
    """Threads that load models, so loading never blocks inference."""
    providers: tuple[str, ...] = ()
    """Execution providers in order of preference; empty = CUDA/TensorRT if available, then CPU."""
    intra_op_threads: int = Field(0, ge=0)
    """Threads inside one operator; 0 lets ONNX Runtime decide."""
    inter_op_threads: int = Field(0, ge=0)
    """Threads across independent operators; 0 lets ONNX Runtime decide."""
    memory_arena: bool = False
    """ONNX Runtime's CPU memory arena for every model (config.toml [runtime] memory_arena overrides): it
    keeps the memory of the largest batch a session ever ran, so it is off by default."""
    compute_nice: int = Field(5, ge=0, le=19)
    """Nice steps the inference and load threads (and ONNX Runtime's own threads) run below the event loop.

    Keeps the loop, which serves every model, from being starved when compute threads outnumber the
    cores; 0 leaves all threads at one priority. Linux only (server.runtime.priority)."""
    heap_trim_mib: int = Field(32, ge=0)
    """Give freed heap memory back to the operating system once malloc holds more than this many MiB of it
    (checked every 2 s; glibc only; 0 = never). Without it RSS stayed hundreds of MB up after large requests."""
    gil_switch_interval_us: int = Field(200, ge=10, le=100_000)
    """How long an inference thread waits for the busy event loop to hand over the GIL (sys.setswitchinterval).

    Python's default of 5 ms left ONNX Runtime idle for about 3 ms before each batch under load."""


class LoggingSettings(BaseSettings):
    """Structured logs on stderr."""

    model_config = _section("SERVER_LOG_")

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    """Minimum level written."""
    format: Literal["json", "text"] = "json"
    """json: one object per line for log shippers; text: for humans."""
    access_sample: float = Field(0.0, ge=0.0, le=1.0)
    """Share of successful inference requests that write an access log line (logger server.access); 0 = off."""


TracesSampler = Literal[
    "always_on", "always_off", "traceidratio", "parentbased_always_on", "parentbased_always_off",
    "parentbased_traceidratio",
]  # fmt: skip


class TracingSettings(BaseSettings):
    """OpenTelemetry traces, configured by the standard OTEL_* variables of the SDK specification.

    Unlike the OpenTelemetry default (otlp), the exporter defaults to none: tracing is off unless asked for.
    """

    model_config = _section("OTEL_")

    traces_exporter: Literal["none", "otlp", "console"] = "none"
    """none: no tracing work at all; otlp: OTLP over gRPC; console: spans as JSON on stdout."""
    exporter_otlp_endpoint: str | None = None
    """OTLP collector address for every signal, e.g. http://collector:4317 (http:// = plaintext)."""
    exporter_otlp_traces_endpoint: str | None = None
    """OTLP collector address for traces; wins over exporter_otlp_endpoint. Neither set = http://localhost:4317."""
    traces_sampler: TracesSampler = "parentbased_always_on"
    """Which requests are traced; parentbased_* follow the caller's sampled flag when it sends a traceparent."""
    traces_sampler_arg: float | None = Field(None, ge=0.0, le=1.0)
    """The ratio of the *traceidratio samplers (unset = 1.0), e.g. 0.01 for one request in a hundred."""
    service_name: str = "oip-inference-server"
    """service.name of every span's resource."""

    @property
    def otlp_endpoint(self) -> str:
        """Where OTLP spans go: the traces endpoint, else the shared one, else the OpenTelemetry default."""
        return self.exporter_otlp_traces_endpoint or self.exporter_otlp_endpoint or "http://localhost:4317"


class ServerSettings(BaseSettings):
    """Everything the server needs to start."""

    model_config = SettingsConfigDict(env_prefix="SERVER_", frozen=True, extra="forbid")

    model_repository: Path = Path("models")
    """Directory of models: <model>/<version>/model.onnx, optional <model>/config.toml; or one model's directory
    (<version>/model.onnx, as KServe lays it out at /mnt/models), served as `model_name`."""
    model_name: str | None = None
    """Name of the model when model_repository is one model's directory; unset: the directory's name."""
    allow_external_model_files: bool = False
    """Open model files and reference profiles that resolve (through symlinks) outside model_repository."""
    server_name: str = "oip-inference-server"
    """Name reported by ServerMetadata."""
    use_uvloop: bool = True
    """Run the event loop on uvloop when it is installed."""
    state_dir: Path | None = None
    """Where run-time routing state (rollbacks, admin weights) persists; unset = <model_repository>/.server-state."""
    strict_readiness: bool = True
    """Ready only while every model in the repository has a ready version (and there is at least one model);
    false: ready once the repository has been loaded, whatever failed (Triton's --strict-readiness=false).
    Models unloaded on purpose (RepositoryModelUnload) do not count."""
    workers: int = Field(1, ge=1, le=64)
    """Server processes sharing the gRPC port; above 1, a supervisor runs them and merges their metrics."""
    grpc: GrpcSettings = Field(default_factory=GrpcSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    runtime: RuntimeSettings = Field(default_factory=RuntimeSettings)
    log: LoggingSettings = Field(default_factory=LoggingSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
    admin: AdminSettings = Field(default_factory=AdminSettings)

    @model_validator(mode="after")
    def _identities_need_mtls(self) -> ServerSettings:
        if self.admin.client_identities and self.grpc.tls_client_ca is None:
            raise ValueError("admin client_identities need client certificates: set grpc tls_client_ca (mTLS)")
        return self


SECTIONS: dict[str, type[BaseSettings]] = {
    "grpc": GrpcSettings,
    "http": HttpSettings,
    "runtime": RuntimeSettings,
    "log": LoggingSettings,
    "tracing": TracingSettings,
    "admin": AdminSettings,
}


def load_settings(overrides: dict[str, Any] | None = None) -> ServerSettings:
    """Build settings from the environment, then apply explicit overrides.

    `overrides` holds top-level fields and per-section dicts, e.g.
    ``{"model_repository": Path("m"), "grpc": {"port": 0}}``; keys whose value
    is None are ignored so unset CLI flags fall through to the environment.
    """
    top: dict[str, Any] = {}
    for key, value in (overrides or {}).items():
        if key in SECTIONS:
            section = {k: v for k, v in dict(value).items() if v is not None}
            top[key] = SECTIONS[key](**section)
        elif value is not None:
            top[key] = value
    return ServerSettings(**top)


def environment_names() -> dict[str, str]:
    """Every environment variable the settings read, mapped to its dotted field ("SERVER_GRPC_PORT": "grpc.port")."""
    names = {}
    top_prefix = str(ServerSettings.model_config.get("env_prefix", ""))
    for field in ServerSettings.model_fields:
        if field not in SECTIONS:
            names[f"{top_prefix}{field}".upper()] = field
    for section, model in SECTIONS.items():
        prefix = str(model.model_config.get("env_prefix", ""))
        for field in model.model_fields:
            names[f"{prefix}{field}".upper()] = f"{section}.{field}"
    return names


def unknown_environment(environ: Mapping[str, str], prefix: str = "SERVER_") -> dict[str, str | None]:
    """Variables in `environ` that look like settings (`prefix`) but name none, each with the nearest real one."""
    known = environment_names()
    return {name: nearest(name, known) for name in sorted(environ) if name.startswith(prefix) and name not in known}
