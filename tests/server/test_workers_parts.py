"""The supervisor's small parts: the restart budget and the shared-port reservation."""

from __future__ import annotations

import socket

import pytest

from server.workers.ports import reserve_port
from server.workers.restarts import RestartBudget


def test_restart_budget_allows_limit_per_window() -> None:
    budget = RestartBudget(limit=3, window_s=60.0)
    assert [budget.allow(t) for t in (0.0, 1.0, 2.0)] == [True, True, True]
    assert budget.allow(3.0) is False  # a fourth within the minute: a crash loop
    assert budget.allow(59.9) is False
    assert budget.allow(60.0) is True  # the first restart has left the window
    assert budget.allow(60.5) is False


def test_reserved_port_admits_reuseport_listeners_only() -> None:
    with reserve_port("127.0.0.1", 0) as reserved:
        port = reserved.getsockname()[1]
        assert port > 0
        # A worker's socket, as grpc makes it with grpc.so_reuseport=1, shares the port.
        with socket.socket() as worker:
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            worker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            worker.bind(("127.0.0.1", port))
            worker.listen()
        # A second supervisor (or any other server) on the same port is refused.
        with pytest.raises(OSError, match=f"could not bind gRPC to 127.0.0.1:{port}"):
            reserve_port("127.0.0.1", port)


def test_port_taken_by_a_plain_listener_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=r"could not bind gRPC.*in use"):
            reserve_port("127.0.0.1", port)
