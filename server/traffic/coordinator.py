"""What must reach every serving process: model loads and unloads, routing changes, judge verdicts, drift scores.

One process: `LocalCoordinator` does it in place. Under --workers each worker has a coordinator
that asks the supervisor, which has every worker do it and answers once all have (see
server.workers.channel), and the judge runs in the supervisor on the merged traffic.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from server.predictions.monitor import DriftScore
from server.repository.manager import ModelRepository
from server.routing.changes import RoutingChange
from server.traffic.judge import CanaryJudge, CanaryStatus
from server.traffic.release import ReleaseManager


class Coordinator(Protocol):
    async def load(self, model: str) -> None:
        """Load or reload `model` everywhere; raises with the reason if it fails (anywhere)."""

    async def unload(self, model: str) -> None:
        """Unload `model` everywhere."""

    async def change_routing(self, change: RoutingChange) -> None:
        """Apply a routing change everywhere."""

    async def judge_status(self, model: str) -> dict[int, CanaryStatus]:
        """The judge's latest verdict on each canary of `model` (version -> status)."""

    async def drift_scores(self, model: str) -> list[DriftScore]:
        """The drift monitor's latest scores of `model`'s versions (empty until some version has enough samples)."""


class LocalCoordinator:
    """The single-process coordinator: everything happens here, at once."""

    def __init__(
        self,
        repository: ModelRepository,
        release: ReleaseManager,
        judge: CanaryJudge,
        drift: Callable[[], list[DriftScore]],
    ) -> None:
        """`drift`: the drift monitor's `scores`."""
        self._repository = repository
        self._release = release
        self._judge = judge
        self._drift = drift

    async def load(self, model: str) -> None:
        await self._repository.load(model)

    async def unload(self, model: str) -> None:
        await self._repository.unload(model)

    async def change_routing(self, change: RoutingChange) -> None:
        await self._release.apply(change)

    async def judge_status(self, model: str) -> dict[int, CanaryStatus]:
        return {version: status for (name, version), status in self._judge.status.items() if name == model}

    async def drift_scores(self, model: str) -> list[DriftScore]:
        return [score for score in self._drift() if score.model == model]
