"""The composition root: builds every part, and owns start and stop order.

app = App(settings, registry)
await app.start()          # binds (port 0 allowed), loads models, then reports ready
...                        # app.grpc_port / app.http_port are the bound ports
await app.stop()           # NOT_SERVING -> refuse new calls -> finish in-flight -> stop gRPC -> unload
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, ProcessCollector

from server.admin.servicer import RoutingAdminServicer
from server.confinement import RepositoryConfinement
from server.coordination.remote import MODELS_NOT_READY, MODELS_READY, WorkerLink
from server.core import InferenceCore
from server.errors import ServerError
from server.grpc.draining import QUIET_MAX_S, Drain
from server.grpc.health import HealthBridge
from server.grpc.overload import CallLimits
from server.grpc.server import (
    EndpointFactory,
    GrpcEndpoint,
    build_admin_server,
    build_grpc_server,
    python_endpoint,
)
from server.grpc.servicer import InferenceServicer
from server.http.side_server import SideHttpServer
from server.native.endpoint import native_endpoint
from server.native.extension import resolve_frontend
from server.native.inference_path import NativeInferencePath
from server.predictions.monitor import DriftMonitor, VersionReference
from server.repository.manager import ModelRepository
from server.repository.records import ModelRecord
from server.repository.scanner import layout_for
from server.runtime.resources import ComputeResources
from server.security.admin_policy import AdminPolicy
from server.settings import ServerSettings
from server.telemetry.access import AccessLog
from server.telemetry.judge_metrics import JudgeMetrics
from server.telemetry.metrics import BeforeCollect, ServerMetrics
from server.telemetry.prediction_metrics import DriftGauge, read_live_counts
from server.telemetry.shadow_metrics import ShadowMetrics
from server.telemetry.totals import read_totals
from server.tracing.setup import build_tracing
from server.traffic.control import RoutingControl
from server.traffic.coordinator import Coordinator, LocalCoordinator
from server.traffic.judge import CanaryJudge
from server.traffic.release import ReleaseManager
from server.traffic.router import Router
from server.traffic.shadow import ShadowRunner
from server.traffic.state_store import RoutingStateStore
from server.versions.assembly import OnnxVersionLoader

log = logging.getLogger(__name__)

#: How often buffered metric samples reach Prometheus between scrapes (see telemetry.recorder).
METRICS_FLUSH_S = 0.1
#: Under --workers, how often a worker moves its prediction counts into its metrics files for the supervisor's
#: drift monitor. Counting a batch of predictions has a fixed numpy and Prometheus cost (~0.15 ms), and drift
#: windows are seconds long. A single process counts predictions only when its registry is read (scrape, drift).
PREDICTIONS_FLUSH_S = 1.0


def state_directory(settings: ServerSettings) -> Path:
    """Where routing state persists: --state-dir, else a hidden directory in the model repository."""
    return settings.state_dir if settings.state_dir is not None else settings.model_repository / ".server-state"


#: Logged (with the role) when the server started but strict readiness keeps it not ready.
NOT_READY_MESSAGE = (
    "%s started but is not ready: strict readiness needs a ready version of every model in the repository "
    "(see 'not_ready'; --lenient-readiness reports ready anyway)"
)


class App:
    """One server process: gRPC endpoint, HTTP side port, repository and runtime pools."""

    def __init__(
        self,
        settings: ServerSettings,
        registry: CollectorRegistry | None = None,
        *,
        role: str = "server",
        link: WorkerLink | None = None,
    ) -> None:
        """`link`: this App is a --workers worker, coordinated by the supervisor through it."""
        self.settings = settings
        # "worker" under the --workers supervisor, so its lifecycle lines don't read as the server's.
        self.role = role
        self.registry = registry if registry is not None else CollectorRegistry()
        self.grpc_port = 0
        self.http_port = 0
        self._ready = False
        self._stopped = False
        self._link = link
        self._models_ready_reported: bool | None = None
        self._compute = ComputeResources.from_settings(settings.runtime)
        # Resolved once: "auto" is the native frontend where its extension loads (docs/native-data-plane.md).
        self.frontend = resolve_frontend(settings.grpc.frontend)
        # First in the registry, so that every scrape reads the samples buffered until that moment.
        self.registry.register(BeforeCollect(self.flush_metrics))
        self.metrics = ServerMetrics(self.registry)
        ProcessCollector(registry=self.registry)  # process_* (memory, CPU, file descriptors) of this process
        self.health = HealthBridge(self.is_ready)
        # Admits the inference calls; on stop, refuses new ones (UNAVAILABLE) and waits for those in flight.
        self.drain = Drain()
        # This process's tracer provider (under --workers: each worker's own); None while tracing is off.
        self.tracing = build_tracing(settings.tracing)
        loader = OnnxVersionLoader(
            settings.runtime,
            self._compute.loading,
            self._compute.inference,
            self.metrics.recorder,
            None if self.tracing is None else self.tracing.batches.executed,
            confinement=RepositoryConfinement(settings.model_repository, settings.allow_external_model_files),
        )
        # Under --workers the supervisor owns the routing state file and judges; workers only read the state.
        store = RoutingStateStore(state_directory(settings))
        judge_metrics = JudgeMetrics(self.registry) if link is None else None
        self.control = RoutingControl(
            store, owner=link is None, on_change=None if judge_metrics is None else judge_metrics.changed
        )
        self.layout = layout_for(settings.model_repository, settings.model_name)
        self.repository = ModelRepository(
            settings.model_repository,
            loader,
            drain_timeout_s=settings.grpc.graceful_shutdown_s,
            listeners=(self._on_model_change, self.health.on_model_change, *(() if link is None else (link.report,))),
            routing=self.control.policy,
            allow_external_files=settings.allow_external_model_files,
            layout=self.layout,
        )
        self.router = Router(self.repository, on_invalid_key=self.metrics.sticky_key_rejected)
        self.shadows = ShadowRunner(ShadowMetrics(self.registry))
        access = AccessLog(settings.log.access_sample) if settings.log.access_sample > 0 else None
        self.core = InferenceCore(self.router, self.shadows, self.metrics.request_unrouted, access)
        self.release = ReleaseManager(self.repository, self.control)
        self.judge: CanaryJudge | None = None
        self.drift: DriftMonitor | None = None
        self.coordinator: Coordinator
        if judge_metrics is None:
            assert link is not None
            link.serve_commands(self.repository, self.release)
            self.coordinator = link
        else:
            # Under --workers the supervisor scores drift, on every worker's predictions together.
            self.drift = DriftMonitor(
                live=lambda: read_live_counts(self.registry.collect()), references=self._reference
            )
            self.registry.register(DriftGauge(self.drift.scores))
            self.judge = CanaryJudge(
                targets=self.release.judge_targets,
                totals=lambda: read_totals(self.registry.collect()),
                apply=self.release.apply,
                metrics=judge_metrics,
                predictions=self.drift.distance,
            )
            self.coordinator = LocalCoordinator(self.repository, self.release, self.judge, self.drift.scores)
        self._servicer = InferenceServicer(
            self.core,
            self.repository,
            self.coordinator,
            settings.server_name,
            self.is_ready,
            self.metrics.request_unrouted,
            None if self.tracing is None else self.tracing.requests,
            self.drain,
            limits=CallLimits(settings.grpc.max_concurrent_rpcs, settings.grpc.max_inflight_bytes),
        )
        self._admin = RoutingAdminServicer(self.repository, self.release, self.coordinator)
        self._native_path = self._native_inference_path(access)
        # Reads the token file now: a missing or empty one stops the start (OSError), before any port is bound.
        # Judged by where admin calls arrive: the admin listener's host when there is one.
        self.admin_policy = AdminPolicy.from_settings(settings.admin, settings.admin.listener_host(settings.grpc.host))
        self._grpc: GrpcEndpoint | None = None
        self._admin_grpc: GrpcEndpoint | None = None
        self.admin_port: int | None = None
        self._http: SideHttpServer | None = None
        self._background: list[asyncio.Task[None]] = []

    def _endpoint(self, inference_path: NativeInferencePath | None) -> EndpointFactory:
        """What serves gRPC (--frontend); the native frontend's main port also gets the ModelInfer path."""
        if self.frontend == "native":
            return functools.partial(native_endpoint, inference_path=inference_path)
        return python_endpoint

    def _native_inference_path(self, access: AccessLog | None) -> NativeInferencePath | None:
        """The native frontend answers plain ModelInfer calls in C++ (docs/native-data-plane.md). With tracing or
        the access log on, C++ draws the requests they want and hands those to the Python path, which traces or
        logs them."""
        if self.frontend != "native":
            return None
        tracing = self.tracing
        path = NativeInferencePath(
            self.repository,
            self._servicer.limits,
            handover=self.metrics.native_handover.observe,
            taken=self._count_native_requests,
            sampling=None if tracing is None else tracing.requests.policy,
            traced=None if tracing is None else tracing.batches.executed,
            access_sample=0.0 if access is None else access.sample,
        )
        self.drain.watch(path)
        return path

    def _count_native_requests(self, model: str, requests: int) -> None:
        self.metrics.native_requests.labels(model).inc(requests)

    def _report_models_ready(self) -> None:
        """Under --workers, tell the supervisor when this worker's strict readiness changes (it is ready only
        while every worker is)."""
        if self._link is None or not self._ready:
            return
        ready = self._models_ready()
        if ready != self._models_ready_reported:
            self._models_ready_reported = ready
            self._link.notify(MODELS_READY if ready else MODELS_NOT_READY)

    def _on_model_change(self, record: ModelRecord) -> None:
        self._report_models_ready()
        weights = {} if record.routing is None else record.routing.weights
        ready = {version: version in record.loaded for version in record.status}
        self.metrics.set_readiness(record.name, ready, weights)
        self.metrics.set_model_info(record.name, {v: loaded.identity for v, loaded in record.loaded.items()})

    def _reference(self, model: str, version: int) -> VersionReference | None:
        """A loaded version's drift settings and reference profile, for the drift monitor."""
        try:
            versions = self.repository.loaded_versions(model)
        except ServerError:  # unloaded since its counters were written
            return None
        for loaded in versions:
            if loaded.version == version:
                return VersionReference(loaded.config.telemetry.drift, loaded.reference)
        return None

    def flush_metrics(self, predictions: bool = True) -> None:
        """Move every loaded version's buffered samples into the Prometheus children (the prediction counts too,
        unless `predictions` is False)."""
        for loaded in self.repository.loaded_versions():
            loaded.recorder.flush(loaded.in_flight, predictions)

    async def _flush_periodically(self) -> None:
        # Under --workers the supervisor reads the children's files, not this registry: keep them fresh.
        worker = self.drift is None  # its supervisor scores drift, from this worker's files
        every = round(PREDICTIONS_FLUSH_S / METRICS_FLUSH_S) if worker else 0
        ticks = 0
        while True:
            await asyncio.sleep(METRICS_FLUSH_S)
            ticks += 1
            self.flush_metrics(predictions=every > 0 and ticks % every == 0)

    def is_ready(self) -> bool:
        """Serving, and under strict readiness (the default) every model in the repository has a ready version."""
        return self._ready and self._models_ready()

    def _models_ready(self) -> bool:
        """What strict readiness asks of the models (always true when lenient)."""
        return not self.settings.strict_readiness or self.repository.every_model_ready()

    async def start(self) -> None:
        """Bind both ports, load the repository, then report ready."""
        await self.health.set_server_serving(False)
        if self.settings.http.enabled:
            self._http = SideHttpServer(self.registry, self.is_ready)
            self.http_port = await self._http.start(self.settings.http.host, self.settings.http.port)
        grpc_settings, admin_settings = self.settings.grpc, self.settings.admin
        admin_elsewhere = admin_settings.port is not None
        self._grpc, self.grpc_port = build_grpc_server(
            grpc_settings,
            self._servicer,
            self.health,
            self._admin,
            self.admin_policy,
            admin_elsewhere,
            self._endpoint(self._native_path),
        )
        await self._grpc.start()
        listening: dict[str, object] = {
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "frontend": self.frontend,
        }
        if admin_settings.port is not None:
            admin_host = admin_settings.listener_host(grpc_settings.host)
            self._admin_grpc, self.admin_port = build_admin_server(
                grpc_settings,
                admin_host,
                admin_settings.port,
                self._servicer,
                self.health,
                self._admin,
                self.admin_policy,
                self._endpoint(None),
            )
            await self._admin_grpc.start()
            listening.update(admin_port=self.admin_port, admin_host=admin_host)
        log.info("%s listening", self.role, extra={**listening, "host": grpc_settings.host})
        self._log_admin_access()
        self._log_layout()
        await self.repository.load_all()
        self._compute.start()
        self._background.append(asyncio.create_task(self._flush_periodically(), name="metrics flush"))
        if self.judge is not None:  # under --workers the supervisor judges, on every worker's traffic
            self._background.append(asyncio.create_task(self.judge.run(), name="canary judge"))
        if self.drift is not None:
            self._background.append(asyncio.create_task(self.drift.run(), name="drift monitor"))
        self._ready = True
        await self.health.follow_server_readiness()
        self._report_models_ready()
        records = self.repository.records()
        if self.is_ready():
            log.info("%s ready", self.role, extra={"models": [r.name for r in records if r.ready]})
        else:
            log.warning(
                NOT_READY_MESSAGE,
                self.role,
                extra={
                    "event": "not_ready",
                    "models": [r.name for r in records if r.ready],
                    "not_ready": [r.name for r in records if not r.ready],
                },
            )

    def _log_layout(self) -> None:
        layout, name = self.layout, self.settings.model_name
        if layout.single_model is not None:
            log.info(
                "the model repository is one model's directory; serving it as one model",
                extra={"event": "single_model_directory", "model": layout.single_model, "path": str(layout.root)},
            )
        elif name is not None:
            log.warning(
                "--model-name names the model of a single model directory; the repository holds model directories, "
                "so it is ignored",
                extra={"event": "model_name_ignored", "path": str(layout.root)},
            )

    def _log_admin_access(self) -> None:
        """Say how the admin RPCs are protected; warn when anyone who reaches the port may use them."""
        policy, host = self.admin_policy, self.settings.admin.listener_host(self.settings.grpc.host)
        if policy.open_publicly:
            log.warning(
                "admin RPCs are open without authentication on a non-loopback address: anyone who reaches the "
                "port can load and unload models and change routing; set --admin-token-file or --admin off",
                extra={"event": "admin_unauthenticated", "host": host},
            )
        elif policy.closed_by_default:
            log.info(
                "admin RPCs are refused: non-loopback address without admin credentials "
                "(set --admin-token-file, or --allow-unauthenticated-admin)",
                extra={"event": "admin_refused_by_default", "host": host},
            )
        else:
            log.info("admin access", extra={"admin": policy.describe(), "host": host})

    async def withdraw_readiness(self) -> None:
        """Report not ready everywhere (ServerReady, /v2/health/ready, grpc.health.v1) while still serving:
        the first step of a shutdown, held for --drain-delay. Idempotent."""
        self._ready = False
        await self.health.shutdown()

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain and shut down: nothing accepted is dropped within the grace period. Idempotent.

        New inference calls are refused with UNAVAILABLE at once, and open streams end after their in-flight
        requests; grpc stops only once those calls are done, so that it has none of ours left to cancel."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.settings.grpc.graceful_shutdown_s if grace_s is None else grace_s
        deadline = time.monotonic() + grace
        await self.withdraw_readiness()
        self.drain.begin()
        if not await self.drain.wait_idle(grace):
            log.warning(
                "in-flight requests did not finish within the grace period; cancelling them",
                extra={"grace_s": grace, "in_flight": self.drain.in_flight},
            )
        await self.drain.wait_quiet(min(QUIET_MAX_S, deadline - time.monotonic()))
        if self._grpc is not None:
            # Closes the listener; what is left (health, metadata calls) gets the rest of the grace period.
            await self._grpc.stop(max(0.0, deadline - time.monotonic()))
        if self._admin_grpc is not None:
            await self._admin_grpc.stop(max(0.0, deadline - time.monotonic()))
        await self.shadows.stop()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.repository.unload_all()
        if self._http is not None:
            await self._http.stop()
        await self._compute.close()
        if self.tracing is not None:  # last: every request and batch span has ended by now
            await asyncio.to_thread(self.tracing.shutdown)
        log.info("%s stopped", self.role)
