"""The supervisor's hub keeps a per-model lock only while a coordinated change to that model runs or waits."""

from __future__ import annotations

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry

from server.coordination.hub import CoordinationHub
from server.telemetry.judge_metrics import JudgeMetrics
from server.traffic.control import RoutingControl
from server.traffic.state_store import RoutingStateStore


class FakeWorker:
    """A worker's channel as the hub sees it: every command succeeds a loop turn later; replies are kept."""

    def __init__(self, expected: int) -> None:
        self.replies: list[dict[str, Any]] = []
        self.commands = 0
        self.hub: CoordinationHub | None = None
        self.peak_locks = 0
        """The most per-name locks the hub held while a command ran."""
        self._expected = expected
        self.all_replied = asyncio.Event()

    async def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.commands += 1
        if self.hub is not None:
            self.peak_locks = max(self.peak_locks, self.hub.names_in_progress)
        await asyncio.sleep(0)
        return {"type": "reply"}

    def reply(self, message: dict[str, Any], **fields: Any) -> None:
        self.replies.append({"id": message["id"], **fields})
        if len(self.replies) == self._expected:
            self.all_replied.set()


def make_hub() -> CoordinationHub:
    registry = CollectorRegistry()
    return CoordinationHub(RoutingControl(RoutingStateStore(None)), registry, JudgeMetrics(registry))


async def test_many_distinct_names_leave_no_lock_behind() -> None:
    hub = make_hub()
    count = 2_000
    worker = FakeWorker(count)
    worker.hub = hub
    hub.attach(0, worker)  # type: ignore[arg-type]
    for index in range(count):
        name = f"{index:05d}" + "x" * 10_000  # distinct 10 kB names, as a client could send
        op = "load" if index % 2 else "unload"
        hub.on_message(0, {"type": "request", "id": index, "op": op, "model": name}, lambda _: None)
    await asyncio.wait_for(worker.all_replied.wait(), timeout=30)
    assert worker.commands == count
    assert all("error" not in reply for reply in worker.replies)
    assert worker.peak_locks > 1  # the changes ran concurrently, each under its name's lock
    assert hub.names_in_progress == 0
    await hub.stop()
