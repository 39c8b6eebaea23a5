"""A worker's side of the coordination: its Coordinator asks the supervisor, and it runs the supervisor's commands.

Requests (worker -> supervisor): load, unload, routing (a RoutingChange), judge_status, drift.
Commands (supervisor -> worker): load, unload, routing; each applies here only, and is answered.
Reports (worker -> supervisor): after every change to a routed model, what the judge needs to know.
Events (worker -> supervisor): "ready", "draining", and "models_ready" / "models_not_ready" when the worker's
strict readiness (every model has a ready version) changes.
"""

from __future__ import annotations

import asyncio
import logging
from multiprocessing.connection import Connection

from server.coordination.channel import Channel, ChannelClosedError, Message
from server.coordination.errors import error_fields, raise_reply_error
from server.coordination.messages import drift_score_from_json, status_from_json, target_to_json
from server.errors import ModelNotReadyError
from server.predictions.monitor import DriftScore
from server.repository.manager import ModelRepository
from server.repository.records import ModelRecord
from server.routing.changes import RoutingChange, fingerprint
from server.traffic.judge import CanaryStatus
from server.traffic.release import ReleaseManager

log = logging.getLogger(__name__)


#: Events a worker sends when its strict readiness changes (server.app).
MODELS_READY = "models_ready"
MODELS_NOT_READY = "models_not_ready"


class WorkerLink:
    """The worker's end of the pipe. Give it the app's parts with `serve_commands`, then `start()` in the loop."""

    def __init__(self, conn: Connection) -> None:
        self._channel = Channel(conn, self._on_message)
        self._repository: ModelRepository | None = None
        self._release: ReleaseManager | None = None
        self._ready: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        self._ready = asyncio.Event()
        self._channel.start()

    def serve_commands(self, repository: ModelRepository, release: ReleaseManager) -> None:
        self._repository = repository
        self._release = release

    def notify(self, event: str) -> None:
        """Tell the supervisor "ready" or "draining"; commands run only once ready."""
        if event == "ready" and self._ready is not None:
            self._ready.set()
        self._channel.send({"type": "event", "event": event})

    def report(self, record: ModelRecord) -> None:
        """Repository listener: tell the supervisor what its judge needs to know about this model now."""
        if self._release is None:
            return
        targets = [t for t in self._release.judge_targets() if t.model == record.name]
        config = record.config
        self._channel.send(
            {
                "type": "report",
                "model": record.name,
                "fingerprint": "" if config is None else fingerprint(config.routing),
                "target": target_to_json(targets[0]) if targets else None,
            }
        )

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._channel.close()

    # ------------------------------------------------------- the coordinator, for the servicers

    async def load(self, model: str) -> None:
        if self._repository is not None:
            await self._repository.require_known(model)  # an unknown name never reaches the supervisor
        await self._ask({"op": "load", "model": model})

    async def unload(self, model: str) -> None:
        if self._repository is not None:
            self._repository.record(model)  # an unknown name never reaches the supervisor
        await self._ask({"op": "unload", "model": model})

    async def change_routing(self, change: RoutingChange) -> None:
        await self._ask({"op": "routing", "change": change.to_json()})

    async def judge_status(self, model: str) -> dict[int, CanaryStatus]:
        reply = await self._ask({"op": "judge_status", "model": model})
        return {int(version): status_from_json(raw) for version, raw in reply.get("status", {}).items()}

    async def drift_scores(self, model: str) -> list[DriftScore]:
        reply = await self._ask({"op": "drift", "model": model})
        return [drift_score_from_json(raw) for raw in reply.get("scores", [])]

    async def _ask(self, message: Message) -> Message:
        try:
            reply = await self._channel.request({"type": "request", **message})
        except ChannelClosedError:
            raise ModelNotReadyError("the server is shutting down (the supervisor is gone)") from None
        raise_reply_error(reply)
        return reply

    # -------------------------------------------------------- commands from the supervisor

    def _on_message(self, message: Message) -> None:
        if message.get("type") != "command":
            log.warning("unexpected message from the supervisor; ignored", extra={"message_type": message.get("type")})
            return
        task = asyncio.get_running_loop().create_task(self._run_command(message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run_command(self, message: Message) -> None:
        assert self._ready is not None
        try:
            await self._ready.wait()  # a starting worker loads everything from disk first
            await self._execute(message)
        except Exception as error:
            self._channel.reply(message, **error_fields(error))
        else:
            self._channel.reply(message)

    async def _execute(self, message: Message) -> None:
        assert self._repository is not None and self._release is not None
        op = message.get("op")
        if op == "load":
            await self._repository.load(str(message["model"]))
        elif op == "unload":
            await self._repository.unload(str(message["model"]))
        elif op == "routing":
            await self._release.apply(RoutingChange.from_json(message["change"]))
        else:
            raise ValueError(f"unknown command {op!r}")
