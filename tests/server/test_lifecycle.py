"""server.lifecycle.serve: the process-level run, here in the test's own loop."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import sys
from pathlib import Path

from server.lifecycle import serve
from server.settings import load_settings


async def test_serve_sets_process_wide_tuning_while_running_and_restores_it(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "model_repository": tmp_path,
            "grpc": {"host": "127.0.0.1", "port": 0},
            "http": {"enabled": False},
            "runtime": {"gil_switch_interval_us": 300},
        }
    )
    before = sys.getswitchinterval()
    seen: dict[str, float] = {}
    ready = asyncio.Event()

    def notify(event: str) -> None:
        seen[event] = sys.getswitchinterval()
        seen[f"{event} frozen"] = gc.get_freeze_count()
        if event == "ready":
            ready.set()

    running = asyncio.create_task(serve(settings, notify=notify))
    await asyncio.wait_for(ready.wait(), 30)
    os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler turns it into a drain
    await asyncio.wait_for(running, 30)

    assert seen["ready"] == 300e-6
    assert seen["draining"] == 300e-6
    assert sys.getswitchinterval() == before
    assert seen["ready frozen"] > 0  # start-up objects stay out of later collections while serving
    assert gc.get_freeze_count() == 0
