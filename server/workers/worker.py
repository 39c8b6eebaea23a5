"""One worker process: the spawn target that runs a full App on the shared gRPC port.

The supervisor hands it settings with the reserved port, reuse_port on and no HTTP side port
(the supervisor serves /metrics for all workers). The worker reports "ready" and "draining"
over a two-way pipe, on which it also asks the supervisor to coordinate loads and routing changes
and runs the supervisor's commands (server.coordination), and drains on SIGTERM exactly like a
standalone server.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection

from server.coordination.remote import WorkerLink
from server.lifecycle import run_loop, serve
from server.settings import ServerSettings
from server.telemetry.logging import configure_logging

log = logging.getLogger("server")

_ORPHAN_CHECK_S = 1.0


class _WorkerFields(logging.Filter):
    """Adds the worker slot and pid to every log line, so interleaved logs stay attributable."""

    def __init__(self, slot: int) -> None:
        super().__init__()
        self._slot = slot

    def filter(self, record: logging.LogRecord) -> bool:
        record.__dict__.update(worker=self._slot, pid=record.process)
        return True


def _stop_when_orphaned() -> None:
    """SIGTERM ourselves (a normal drain) if the supervisor dies, so no worker outlives it."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(_ORPHAN_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="orphan-watch", daemon=True).start()


def worker_main(settings: ServerSettings, slot: int, conn: Connection) -> None:
    """Process entry point; exits 0 after a drain, 1 when the app could not start."""
    configure_logging(settings.log.level, settings.log.format)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_WorkerFields(slot))
    _stop_when_orphaned()
    try:
        run_loop(serve(settings, role="worker", link=WorkerLink(conn)), settings.use_uvloop)
    except OSError as exc:
        log.error("worker failed to start", extra={"error": str(exc)})
        sys.exit(1)
    finally:
        conn.close()
