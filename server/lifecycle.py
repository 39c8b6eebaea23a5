"""Run one App until SIGTERM/SIGINT: the body of a standalone server and of each --workers process."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
from collections.abc import Callable, Coroutine
from types import ModuleType
from typing import Any, TypeVar

from server.app import App
from server.coordination.remote import WorkerLink
from server.settings import ServerSettings

uvloop: ModuleType | None
try:
    import uvloop
except ImportError:  # uvloop does not build on every platform; asyncio's loop still works
    uvloop = None

log = logging.getLogger("server")

T = TypeVar("T")


def _ignore(event: str) -> None:
    pass


def _freeze_startup_objects() -> None:
    """Keep the objects of start-up (imports, models, settings) out of every later garbage collection.

    A full collection walked them all: under load one ran every 2 s and paused the event loop for
    17-25 ms, a tail-latency spike for every request in flight. Frozen, it takes about 0.5 ms.
    """
    gc.collect()
    gc.freeze()


class StartupError(OSError):
    """The app could not start (a port taken, a TLS file unreadable); already logged by `serve`."""


async def serve(
    settings: ServerSettings,
    *,
    role: str = "server",
    notify: Callable[[str], None] = _ignore,
    link: WorkerLink | None = None,
) -> None:
    """Start the app, run until SIGTERM or SIGINT, then (after the drain delay, already not ready) drain and stop.

    `notify` hears "ready" once the app serves and "draining" when shutdown begins; so does the
    supervisor, through `link`, when this process is a --workers worker.
    """
    if link is not None:
        link.start()
        notify = link.notify
    app = App(settings, role=role, link=link)
    # Process-wide, so set here and not in the embeddable App: inference threads must get the GIL
    # back from a busy event loop quickly, or ONNX Runtime idles between batches.
    previous_interval = sys.getswitchinterval()
    sys.setswitchinterval(settings.runtime.gil_switch_interval_us / 1e6)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        try:
            await app.start()
        except OSError as error:  # said first, so the log reads in order: the failure, then the stop
            log.error("%s failed to start", role, extra={"error": str(error)})
            raise StartupError(str(error)) from None
        _freeze_startup_objects()
        notify("ready")
        await stop.wait()
        delay = settings.grpc.drain_delay_s
        log.info(
            "shutdown requested; draining", extra={"grace_s": settings.grpc.graceful_shutdown_s, "drain_delay_s": delay}
        )
        notify("draining")
        if delay > 0:  # pre-stop: not ready at once, yet serving normally while load balancers catch up
            await app.withdraw_readiness()
            await asyncio.sleep(delay)
    finally:
        await app.stop()
        if link is not None:
            link.close()
        sys.setswitchinterval(previous_interval)
        gc.unfreeze()


def run_loop(main: Coroutine[Any, Any, T], use_uvloop: bool) -> T:
    """Run `main` to completion on uvloop when wanted and installed, else on asyncio's loop."""
    if use_uvloop and uvloop is not None:
        result: T = uvloop.run(main)
        return result
    return asyncio.run(main)
