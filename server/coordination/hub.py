"""The supervisor's side of the coordination: one place that sees every worker.

- A load, unload or routing change asked for by any worker runs on every live worker, one model
  at a time, and the asking worker hears back once all have answered (the first failure, if any).
- It owns the routing state file: a change is persisted here before the workers apply it, so a
  worker started later (a restart, a replacement) reads the same state.
- It runs the canary judge on the merged traffic of all workers (read from the multiprocess
  metrics, as a scrape would), with what the workers report about each routed model.
- It answers the workers' admin API with the judge's verdicts and the drift monitor's scores.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry

from server.coordination.channel import Channel, ChannelClosedError, Message
from server.coordination.errors import error_fields, raise_reply_error
from server.coordination.messages import drift_score_to_json, status_to_json, target_from_json
from server.keyed_locks import KeyedLocks
from server.predictions.monitor import DriftMonitor
from server.routing.changes import RoutingChange
from server.telemetry.judge_metrics import JudgeMetrics
from server.telemetry.totals import read_totals
from server.traffic.control import RoutingControl
from server.traffic.judge import CanaryJudge, JudgeTarget

log = logging.getLogger(__name__)


class CoordinationHub:
    """Create in the supervisor's loop; `attach` each worker's channel, `run_judge()` as a task."""

    def __init__(
        self,
        control: RoutingControl,
        metrics_registry: CollectorRegistry,
        judge_metrics: JudgeMetrics,
        drift: DriftMonitor | None = None,
    ) -> None:
        """`drift`: the monitor whose canary-versus-stable prediction distance the judge uses as a gate, and whose
        scores the workers' admin API reports."""
        self._control = control
        self._drift = drift
        self._workers: dict[int, Channel] = {}
        self._targets: dict[str, JudgeTarget] = {}
        # Model names come from clients (through the workers): a lock lives only while a change to it runs or waits.
        self._locks = KeyedLocks()
        self._tasks: set[asyncio.Task[None]] = set()
        self.judge = CanaryJudge(
            targets=lambda: list(self._targets.values()),
            totals=lambda: read_totals(metrics_registry.collect()),
            apply=self.apply_change,
            metrics=judge_metrics,
            predictions=None if drift is None else drift.distance,
        )

    @property
    def names_in_progress(self) -> int:
        """Models with a coordinated change running or waiting: the size of the per-name lock table."""
        return len(self._locks)

    def attach(self, slot: int, channel: Channel) -> None:
        self._workers[slot] = channel

    def detach(self, slot: int, channel: Channel) -> None:
        if self._workers.get(slot) is channel:
            del self._workers[slot]

    def on_message(self, slot: int, message: Message, on_event: Callable[[str], None]) -> None:
        """Everything a worker sends that is not a reply."""
        kind = message.get("type")
        if kind == "event":
            on_event(str(message.get("event", "")))
        elif kind == "report":
            self._on_report(message)
        elif kind == "request":
            task = asyncio.get_running_loop().create_task(self._serve_request(slot, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            log.warning("unexpected message from a worker; ignored", extra={"worker": slot, "message_type": kind})

    async def apply_change(self, change: RoutingChange) -> None:
        """Persist a routing change, then have every worker apply it."""
        async with self._locks.hold(change.model):
            self._control.apply(change)
            await self._fan_out({"op": "routing", "change": change.to_json()})

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _on_report(self, message: Message) -> None:
        model = str(message["model"])
        if message.get("fingerprint"):  # the config that serves now: state made for another one is stale
            self._control.forget_stale(model, str(message["fingerprint"]))
        target = message.get("target")
        if target is None:
            self._targets.pop(model, None)
        else:
            self._targets[model] = target_from_json(target)

    async def _serve_request(self, slot: int, message: Message) -> None:
        channel = self._workers.get(slot)
        try:
            fields = await self._execute(message)
        except Exception as error:
            if channel is not None:
                channel.reply(message, **error_fields(error))
            return
        if channel is not None:
            channel.reply(message, **fields)

    async def _execute(self, message: Message) -> dict[str, Any]:
        op = message.get("op")
        if op in ("load", "unload"):
            model = str(message["model"])
            async with self._locks.hold(model):
                await self._fan_out({"op": op, "model": model})
            return {}
        if op == "routing":
            await self.apply_change(RoutingChange.from_json(message["change"]))
            return {}
        if op == "judge_status":
            model = str(message["model"])
            statuses = {str(v): status_to_json(s) for (name, v), s in self.judge.status.items() if name == model}
            return {"status": statuses}
        if op == "drift":
            model = str(message["model"])
            scores = [] if self._drift is None else self._drift.scores()
            return {"scores": [drift_score_to_json(score) for score in scores if score.model == model]}
        raise ValueError(f"unknown request {op!r}")

    async def _fan_out(self, command: Message) -> None:
        """Run `command` on every live worker; raise the first failure once all have answered."""
        workers = list(self._workers.items())
        replies = await asyncio.gather(
            *(channel.request({"type": "command", **command}) for _, channel in workers), return_exceptions=True
        )
        for (slot, _), reply in zip(workers, replies, strict=True):
            if isinstance(reply, ChannelClosedError):
                # A worker that died meanwhile is replaced by one that reads the repository and state afresh.
                log.warning("worker exited during a coordinated change", extra={"worker": slot, "op": command["op"]})
                continue
            if isinstance(reply, BaseException):
                raise reply
            raise_reply_error(reply)
