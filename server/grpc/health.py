"""Keeps grpc.health.v1 in step with the server and each model's readiness.

Service "" is the server; each model name is its own service, SERVING while
at least one of its versions is ready.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from grpc_health.v1 import health, health_pb2

from server.repository.records import ModelRecord

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthBridge:
    """Owns the health servicer and translates repository changes into statuses."""

    def __init__(self, server_ready: Callable[[], bool] | None = None) -> None:
        """`server_ready`: whether the server as a whole is ready now (strict readiness follows the models);
        asked on every model change once the server has started serving."""
        self.servicer = health.aio.HealthServicer()
        self._updates: set[asyncio.Task[None]] = set()
        self._server_ready = server_ready
        self._following = False

    async def set_server_serving(self, serving: bool) -> None:
        await self.servicer.set("", SERVING if serving else NOT_SERVING)

    async def follow_server_readiness(self) -> None:
        """From now on service "" is SERVING exactly while `server_ready()` says so."""
        self._following = self._server_ready is not None
        await self.set_server_serving(self._server_ready() if self._server_ready is not None else True)

    def on_model_change(self, record: ModelRecord) -> None:
        """Repository listener (synchronous): schedule the status update on the loop."""
        self._set(record.name, SERVING if record.ready else NOT_SERVING)
        if self._following and self._server_ready is not None:
            self._set("", SERVING if self._server_ready() else NOT_SERVING)

    def _set(self, service: str, status: int) -> None:
        task = asyncio.get_running_loop().create_task(self.servicer.set(service, status))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def shutdown(self) -> None:
        """Every service NOT_SERVING, and no new status changes after this."""
        self._following = False
        if self._updates:
            await asyncio.gather(*self._updates)
        await self.servicer.enter_graceful_shutdown()
