"""Keeps grpc.health.v1 in step with the server and each model's readiness.

Service "" is the server; each model name is its own service, SERVING while
at least one of its versions is ready.
"""

from __future__ import annotations

import asyncio

from grpc_health.v1 import health, health_pb2

from server.repository.records import ModelRecord

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class HealthBridge:
    """Owns the health servicer and translates repository changes into statuses."""

    def __init__(self) -> None:
        self.servicer = health.aio.HealthServicer()
        self._updates: set[asyncio.Task[None]] = set()

    async def set_server_serving(self, serving: bool) -> None:
        await self.servicer.set("", SERVING if serving else NOT_SERVING)

    def on_model_change(self, record: ModelRecord) -> None:
        """Repository listener (synchronous): schedule the status update on the loop."""
        status = SERVING if record.ready else NOT_SERVING
        task = asyncio.get_running_loop().create_task(self.servicer.set(record.name, status))
        self._updates.add(task)
        task.add_done_callback(self._updates.discard)

    async def shutdown(self) -> None:
        """Every service NOT_SERVING, and no new status changes after this."""
        if self._updates:
            await asyncio.gather(*self._updates)
        await self.servicer.enter_graceful_shutdown()
