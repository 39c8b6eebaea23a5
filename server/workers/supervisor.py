"""The --workers supervisor: N worker processes on one gRPC port, one /metrics for all of them.

run_supervisor(settings)   # blocks until SIGTERM/SIGINT or a crash loop; returns the exit code

The supervisor never serves gRPC. It reserves the port, spawns the workers (each a full App
binding that port with SO_REUSEPORT), replaces workers that die, and serves the HTTP side port:
/metrics merges every worker's samples (prometheus_client multiprocess mode) and
/v2/health/ready is 200 only while every worker reports ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import tempfile
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from server.app import NOT_READY_MESSAGE, state_directory
from server.coordination.channel import Message
from server.coordination.hub import CoordinationHub
from server.http.side_server import SideHttpServer
from server.lifecycle import run_loop
from server.predictions.monitor import DriftMonitor
from server.repository.scanner import layout_for
from server.security.admin_policy import with_token_read
from server.settings import ServerSettings
from server.telemetry.judge_metrics import JudgeMetrics
from server.telemetry.prediction_metrics import DriftGauge, read_live_counts
from server.telemetry.process_metrics import ProcessTreeCollector
from server.traffic.control import RoutingControl
from server.traffic.state_store import RoutingStateStore
from server.versions.references import RepositoryReferences
from server.workers.handle import WorkerHandle, start_worker
from server.workers.ports import reserve_port
from server.workers.restarts import RestartBudget

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Beyond the drain grace period, how long workers get to unload and exit before SIGKILL.
_EXIT_MARGIN_S = 10.0
_KILL_WAIT_S = 5.0


def worker_settings(settings: ServerSettings, port: int, admin_port: int | None = None) -> ServerSettings:
    """What each worker runs: the reserved ports (gRPC, and the admin listener's if any) shared via SO_REUSEPORT,
    no HTTP side port, and the admin token read once here (OSError when its file cannot be read), so that every
    worker enforces the same one."""
    admin = with_token_read(settings.admin)
    if admin_port is not None:
        admin = admin.model_copy(update={"port": admin_port})
    return settings.model_copy(
        update={
            "workers": 1,
            "grpc": settings.grpc.model_copy(update={"port": port, "reuse_port": True}),
            "http": settings.http.model_copy(update={"enabled": False}),
            "admin": admin,
        }
    )


class Supervisor:
    """Starts the workers, replaces crashed ones within a restart budget, and stops them in order."""

    def __init__(self, settings: ServerSettings, metrics_dir: Path, budget: RestartBudget | None = None) -> None:
        self._settings = settings
        self._metrics_dir = metrics_dir
        self._budget = budget if budget is not None else RestartBudget()
        self._context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked grpc/ORT state
        self._child_settings = settings
        self._workers: dict[int, WorkerHandle] = {}
        self._all_ready = False
        self._started = False  # every worker has been ready at least once
        self._stopping = False
        self._exit_code = 0
        self._stop: asyncio.Event | None = None
        self._hub: CoordinationHub | None = None
        self._restarts = Counter(
            "inference_worker_restarts", "Workers replaced after exiting while the server was serving.", registry=None
        )

    def is_ready(self) -> bool:
        return self._all_ready and not self._stopping

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT or a failure, then drain every worker; returns the exit code."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._request_stop)
        grpc, admin = self._settings.grpc, self._settings.admin
        with contextlib.ExitStack() as reservations:
            port = int(reservations.enter_context(reserve_port(grpc.host, grpc.port)).getsockname()[1])
            admin_port = None
            if admin.port is not None:
                admin_host = admin.listener_host(grpc.host)
                admin_port = int(reservations.enter_context(reserve_port(admin_host, admin.port)).getsockname()[1])
            self._child_settings = worker_settings(self._settings, port, admin_port)
            registry = self._metrics_registry()
            http, http_port = await self._start_http(registry)
            drift = DriftMonitor(
                live=lambda: read_live_counts(registry.collect()),
                references=RepositoryReferences(
                    self._settings.model_repository,
                    layout_for(self._settings.model_repository, self._settings.model_name).model_dir,
                    self._settings.allow_external_model_files,
                ),
            )
            registry.register(DriftGauge(drift.scores))  # here only: one drift value per version per server
            self._hub = self._start_hub(registry, drift)
            judging = asyncio.create_task(self._hub.judge.run(), name="canary judge")
            scoring = asyncio.create_task(drift.run(), name="drift monitor")
            listening = {
                "grpc_port": port,
                "http_port": http_port,
                "host": grpc.host,
                "workers": self._settings.workers,
            }
            if admin_port is not None:
                listening["admin_port"] = admin_port
            log.info("server listening", extra=listening)
            try:
                for slot in range(self._settings.workers):
                    self._spawn(slot)
                await self._stop.wait()
            finally:
                judging.cancel()
                scoring.cancel()
                await asyncio.gather(judging, scoring, return_exceptions=True)
                await self._hub.stop()
                await self._stop_workers()
                if http is not None:
                    await http.stop()
        return self._exit_code

    def _metrics_registry(self) -> CollectorRegistry:
        """Every worker's samples merged (their files), plus the judge's own families (in this process)."""
        registry = CollectorRegistry()
        # prometheus_client's multiprocess module has no annotations.
        MultiProcessCollector(registry, path=str(self._metrics_dir))  # type: ignore[no-untyped-call]
        registry.register(ProcessTreeCollector(lambda: [w.pid for w in self._workers.values()]))
        registry.register(self._restarts)
        return registry

    async def _start_http(self, registry: CollectorRegistry) -> tuple[SideHttpServer | None, int]:
        if not self._settings.http.enabled:
            return None, 0
        http = SideHttpServer(registry, self.is_ready)
        return http, await http.start(self._settings.http.host, self._settings.http.port)

    def _start_hub(self, registry: CollectorRegistry, drift: DriftMonitor) -> CoordinationHub:
        """The coordination hub: owns the routing state file and judges canaries on every worker's traffic.

        The judge's families live only here (workers have none), so /metrics shows each once.
        """
        metrics = JudgeMetrics(registry)
        store = RoutingStateStore(state_directory(self._settings))
        control = RoutingControl(store, owner=True, on_change=metrics.changed)
        return CoordinationHub(control, registry, metrics, drift)

    def _spawn(self, slot: int) -> None:
        worker = start_worker(self._context, self._child_settings, slot, asyncio.get_running_loop())
        self._workers[slot] = worker
        worker.watch(self._on_message, self._on_exit)
        if self._hub is not None:
            self._hub.attach(slot, worker.channel)
        log.info("worker started", extra={"worker": slot, "pid": worker.pid})

    def _on_message(self, worker: WorkerHandle, message: Message) -> None:
        assert self._hub is not None
        self._hub.on_message(worker.slot, message, lambda event: self._update_readiness())

    def _on_exit(self, worker: WorkerHandle) -> None:
        # Drops the dead pid's live gauges; its counters and histograms stay in the totals.
        mark_process_dead(worker.pid, str(self._metrics_dir))  # type: ignore[no-untyped-call]
        if self._workers.get(worker.slot) is worker:
            del self._workers[worker.slot]
        if self._hub is not None:
            self._hub.detach(worker.slot, worker.channel)
        expected = self._stopping and worker.exitcode == 0
        log.log(
            logging.INFO if expected else logging.WARNING,
            "worker exited",
            extra={"worker": worker.slot, "pid": worker.pid, "exit_code": worker.exitcode},
        )
        self._update_readiness()
        if self._stopping:
            return
        if not self._started:
            self._fail("a worker exited before every worker was ready")
        elif not self._budget.allow(time.monotonic()):
            self._fail("workers keep exiting; restart budget used up")
        else:
            try:
                self._spawn(worker.slot)
                self._restarts.inc()
            except OSError as error:  # raised inside a loop callback, it would only be logged
                self._fail(f"could not start a replacement worker: {error}")

    def _update_readiness(self) -> None:
        workers = self._workers.values()
        started = len(self._workers) == self._settings.workers and all(w.ready for w in workers)
        ready = started and all(w.models_ready for w in workers)  # strict readiness, as each worker judges it
        if started and not self._started:
            self._started = True
            if not ready:
                log.warning(NOT_READY_MESSAGE, "server", extra={"event": "not_ready"})
        if ready and not self._all_ready:
            log.info("server ready", extra={"pids": sorted(w.pid for w in workers)})
        self._all_ready = ready

    def _request_stop(self) -> None:
        if not self._stopping:
            grpc = self._settings.grpc
            log.info(
                "shutdown requested; draining",
                extra={"grace_s": grpc.graceful_shutdown_s, "drain_delay_s": grpc.drain_delay_s},
            )
        self._begin_stop()

    def _fail(self, reason: str) -> None:
        log.error("stopping the server", extra={"reason": reason})
        self._exit_code = 1
        self._begin_stop()

    def _begin_stop(self) -> None:
        self._stopping = True  # readiness off at once, and no more restarts
        if self._stop is not None:
            self._stop.set()

    async def _stop_workers(self) -> None:
        """SIGTERM every worker (each waits the drain delay and drains like a standalone server); SIGKILL those
        that overrun."""
        self._stopping = True
        for worker in list(self._workers.values()):
            worker.terminate()
        grpc = self._settings.grpc
        if await self._wait_exited(grpc.drain_delay_s + grpc.graceful_shutdown_s + _EXIT_MARGIN_S):
            return
        for worker in list(self._workers.values()):
            log.warning("worker did not stop in time; killing it", extra={"worker": worker.slot, "pid": worker.pid})
            worker.kill()
        await self._wait_exited(_KILL_WAIT_S)

    async def _wait_exited(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self._workers:  # emptied by _on_exit as each sentinel fires
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True


def run_supervisor(settings: ServerSettings) -> int:
    """Run settings.workers workers until SIGTERM/SIGINT; returns the process exit code."""
    previous = os.environ.get(MULTIPROC_ENV)
    with tempfile.TemporaryDirectory(prefix="oip-server-metrics-", ignore_cleanup_errors=True) as directory:
        # Spawned workers import prometheus_client with this set, so their metrics live as
        # files here; the supervisor's collector merges those files on each scrape.
        os.environ[MULTIPROC_ENV] = directory
        try:
            code = run_loop(Supervisor(settings, Path(directory)).run(), settings.use_uvloop)
        finally:
            if previous is None:
                os.environ.pop(MULTIPROC_ENV, None)
            else:
                os.environ[MULTIPROC_ENV] = previous
    log.info("server stopped", extra={"exit_code": code})
    return code
