"""The admin guard's pieces that need no server: which RPCs it covers, and its rate-limited refusal log."""

from __future__ import annotations

import logging

import pytest

from oip.v1 import grpc_service_pb2 as pb
from server.grpc.admin_guard import ADMIN_SERVICE, INFERENCE_ADMIN_METHODS, ROUTING_ADMIN_METHODS, RefusalLog
from server.security.admin_policy import Refusal, RefusalKind

ROUTING_RPCS = {"GetRouting", "SetWeights", "Promote", "Rollback", "Reset", "PauseJudge", "GetDrift"}
REFUSAL = Refusal(RefusalKind.UNAUTHENTICATED, "missing_token", "needs a token")


def test_the_admin_surface_is_every_state_changing_rpc() -> None:
    inference = {method.name for method in pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].methods}
    assert INFERENCE_ADMIN_METHODS == {"RepositoryModelLoad", "RepositoryModelUnload"} <= inference
    assert {method.name for method in ADMIN_SERVICE.methods} == ROUTING_ADMIN_METHODS
    assert ROUTING_RPCS <= ROUTING_ADMIN_METHODS


def test_refusals_are_logged_at_most_once_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    refusals = RefusalLog(interval_s=10.0, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="server.grpc.admin_guard"):
        for _ in range(50):
            refusals.record("SetWeights", REFUSAL, "ipv4:127.0.0.1:5555")
        now[0] += 10.0
        refusals.record("Promote", REFUSAL, "ipv4:127.0.0.1:5556")
    records = [r for r in caplog.records if r.getMessage() == "admin call refused"]
    assert [(r.method, r.suppressed) for r in records] == [("SetWeights", 0), ("Promote", 49)]
    assert records[0].reason == "missing_token" and records[0].peer == "ipv4:127.0.0.1:5555"
