"""Running real servers on 127.0.0.1 with port 0, in the test's loop or in a thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from server.app import App
from server.settings import ServerSettings, load_settings


def local_settings(repository: Path, state_dir: Path | None = None, **grpc: Any) -> ServerSettings:
    """Loopback-only settings with free ports and small thread pools; routing state under `state_dir` if given."""
    return load_settings(
        {
            "model_repository": repository,
            "state_dir": state_dir,
            "grpc": {"host": "127.0.0.1", "port": 0, "graceful_shutdown_s": 5.0, **grpc},
            "http": {"host": "127.0.0.1", "port": 0},
            "runtime": {"inference_threads": 4, "load_threads": 2, "intra_op_threads": 1, "inter_op_threads": 1},
        }
    )


@asynccontextmanager
async def running_app(repository: Path, **grpc: Any) -> AsyncIterator[App]:
    """An App started in the current event loop with a fresh metrics registry."""
    app = App(local_settings(repository, **grpc), CollectorRegistry())
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace_s=2.0)


class ThreadedServer:
    """An App on its own event loop in a background thread, for synchronous clients."""

    def __init__(self, repository: Path, state_dir: Path | None = None, **grpc: Any) -> None:
        self._settings = local_settings(repository, state_dir, **grpc)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="test-server", daemon=True)
        self.app: App | None = None

    @property
    def address(self) -> str:
        assert self.app is not None
        return f"127.0.0.1:{self.app.grpc_port}"

    def __enter__(self) -> ThreadedServer:
        self._thread.start()
        self.app = App(self._settings, CollectorRegistry())
        asyncio.run_coroutine_threadsafe(self.app.start(), self._loop).result(timeout=60)
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self.app is not None
        asyncio.run_coroutine_threadsafe(self.app.stop(grace_s=2.0), self._loop).result(timeout=60)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()
