"""The RoutingAdmin gRPC service: every method validates, asks the coordinator, then reports the new state.

Who may call it is decided before any method runs: `server.grpc.admin_guard` wraps every RoutingAdmin
handler (and the repository load/unload RPCs) with the admin access policy of `server.security`.
"""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from oip.v1 import routing_admin_pb2 as admin_pb
from oip.v1 import routing_admin_pb2_grpc as admin_grpc
from server.admin.messages import drift_report, routing_state
from server.errors import InvalidInputError
from server.grpc.errors import grpc_errors
from server.repository.manager import ModelRepository
from server.routing.changes import RoutingChange
from server.traffic.coordinator import Coordinator
from server.traffic.release import ReleaseManager

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]


class RoutingAdminServicer(admin_grpc.RoutingAdminServicer):
    def __init__(self, repository: ModelRepository, release: ReleaseManager, coordinator: Coordinator) -> None:
        self._repository = repository
        self._release = release
        self._coordinator = coordinator

    async def _state(self, model: str) -> admin_pb.RoutingState:
        record = self._repository.record(model)
        state = None if record.config is None else self._release.control.current_state(model, record.config.routing)
        return routing_state(record, state, await self._coordinator.judge_status(model))

    async def _change(self, change: RoutingChange, context: Context) -> admin_pb.RoutingState:
        await self._coordinator.change_routing(change)
        return await self._state(change.model)

    @grpc_errors
    async def GetRouting(self, request: admin_pb.GetRoutingRequest, context: Context) -> admin_pb.GetRoutingResponse:
        if request.model:
            return admin_pb.GetRoutingResponse(models=[await self._state(request.model)])
        routed = [r.name for r in self._repository.records() if r.config is not None and r.config.routing.weights]
        return admin_pb.GetRoutingResponse(models=[await self._state(name) for name in routed])

    @grpc_errors
    async def SetWeights(self, request: admin_pb.SetWeightsRequest, context: Context) -> admin_pb.RoutingState:
        if not request.weights:
            raise InvalidInputError("SetWeights needs at least one version -> weight entry")
        weights = {int(version): int(weight) for version, weight in request.weights.items()}
        return await self._change(self._release.set_weights(request.model, weights), context)

    @grpc_errors
    async def Promote(self, request: admin_pb.VersionRequest, context: Context) -> admin_pb.RoutingState:
        return await self._change(self._release.promote(request.model, request.version), context)

    @grpc_errors
    async def Rollback(self, request: admin_pb.RollbackRequest, context: Context) -> admin_pb.RoutingState:
        change = self._release.rollback(request.model, request.version, request.reason or "manual")
        return await self._change(change, context)

    @grpc_errors
    async def Reset(self, request: admin_pb.ModelRequest, context: Context) -> admin_pb.RoutingState:
        return await self._change(self._release.reset(request.model), context)

    @grpc_errors
    async def PauseJudge(self, request: admin_pb.PauseJudgeRequest, context: Context) -> admin_pb.RoutingState:
        return await self._change(self._release.pause_judge(request.model, request.paused), context)

    @grpc_errors
    async def GetDrift(self, request: admin_pb.ModelRequest, context: Context) -> admin_pb.DriftReport:
        if not request.model:
            raise InvalidInputError("GetDrift needs a model name")
        record = self._repository.record(request.model)  # an unknown model is NOT_FOUND
        return drift_report(record, await self._coordinator.drift_scores(request.model))
