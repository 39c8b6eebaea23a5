"""`python -m server` as a child process, for tests of the real command line and signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

REPO_ROOT = Path(__file__).resolve().parents[2]


def http_ready_status(http_port: int) -> int:
    """The HTTP status of a server's /v2/health/ready: 200 ready, 503 not."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/v2/health/ready", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


class ServerProcess:
    """Starts the server on loopback with free ports and reads the bound ports from its JSON log."""

    def __init__(self, repository: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.args = [
            sys.executable, "-m", "server",
            "--model-repository", str(repository),
            "--host", "127.0.0.1", "--grpc-port", "0",
            "--metrics-host", "127.0.0.1", "--metrics-port", "0",
            "--log-format", "json", *extra_args,
        ]  # fmt: skip
        self.env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.logs: list[dict[str, Any]] = []
        self.grpc_port = 0
        self.http_port = 0
        self._process: subprocess.Popen[str] | None = None
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def process(self) -> subprocess.Popen[str]:
        assert self._process is not None
        return self._process

    def start(self, timeout_s: float = 60.0) -> ServerProcess:
        self._process = subprocess.Popen(
            self.args, cwd=REPO_ROOT, env=self.env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self._reader = threading.Thread(target=self._read_logs, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout_s
        while not self._ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not become ready; log: {self.logs}")
        return self

    def _read_logs(self) -> None:
        assert self._process is not None and self._process.stderr is not None
        for line in self._process.stderr:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                entry = {"msg": line.rstrip()}
            self.logs.append(entry)
            if entry.get("msg") == "server listening":
                self.grpc_port, self.http_port = entry["grpc_port"], entry["http_port"]
            started = entry.get("event") == "not_ready" and str(entry.get("msg", "")).startswith("server ")
            if entry.get("msg") == "server ready" or started:
                self._ready.set()  # started: ready, or not ready under strict readiness (some model failed)

    def terminate(self) -> None:
        """Send SIGTERM (graceful drain) without waiting."""
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout_s: float = 30.0) -> int:
        code = self.process.wait(timeout_s)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code

    def stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self.terminate()
        try:
            self.wait(30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self.wait()

    def ready_status(self) -> int:
        """The HTTP status of /v2/health/ready: 200 ready, 503 not."""
        return http_ready_status(self.http_port)

    def scrape(self) -> str:
        """The server's /metrics, as Prometheus would read it."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}/metrics", timeout=5) as response:
            return str(response.read().decode())

    def metric(self, name: str, **labels: str) -> float:
        """The current value of one sample on the server's /metrics (0 when absent)."""
        for family in text_string_to_metric_families(self.scrape()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return float(sample.value)
        return 0.0

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
