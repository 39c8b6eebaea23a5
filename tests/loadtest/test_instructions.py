"""loadtest.instructions: the parts that need no valgrind run (a real run takes minutes; see docs/benchmarks.md)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from loadtest import instructions
from loadtest.baselines import FloorServer
from loadtest.errors import LoadTestError
from loadtest.inputs import with_parameters
from loadtest.instructions import main, parse_summary, valgrind_command
from loadtest.local_server import free_ports
from oip.v1 import grpc_service_pb2 as pb


def test_summary_of_a_callgrind_dump() -> None:
    dump = "version: 1\ncreator: callgrind-3.19.0\npid: 7\ncmd: python\npart: 1\n\nevents: Ir\nsummary: 964523069\n"
    assert parse_summary(dump) == 964_523_069
    assert parse_summary("events: Ir\ntotals: 12\n") == 12
    with pytest.raises(LoadTestError, match="summary"):
        parse_summary("events: Ir\n")


def test_valgrind_command_writes_per_process_dumps(tmp_path: Path) -> None:
    command = valgrind_command(tmp_path / "ours")
    assert command[:2] == ["valgrind", "--tool=callgrind"]
    assert f"--callgrind-out-file={tmp_path / 'ours'}.%p" in command


def test_missing_valgrind_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path) -> None:
    monkeypatch.setattr(instructions.shutil, "which", lambda name: None)
    assert main(["--model-repository", str(tmp_path), "--model", "m"]) == 2
    assert capsys.readouterr().err.strip() == (
        "loadtest.instructions: error: valgrind is not installed (Debian package valgrind)"
    )


def test_bad_counts_are_refused(capsys, tmp_path: Path) -> None:
    assert main(["--model-repository", str(tmp_path), "--model", "m", "--requests", "0"]) == 2
    assert "--requests and --concurrency must be >= 1" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("env") is None, reason="needs env(1)")
def test_floor_server_runs_behind_a_launcher_that_execs_in_place() -> None:
    with FloorServer(b"", launcher=["env"]) as floor:
        assert floor.port > 0
        # env execs the server in place, as valgrind does: the pid is the server's own.
        assert b"loadtest.floor_server" in Path(f"/proc/{floor.pid}/cmdline").read_bytes()


def test_parameters_are_added_to_the_request() -> None:
    payload = pb.ModelInferRequest(model_name="m", id="7").SerializeToString()
    assert with_parameters(payload, {}) == payload
    request = pb.ModelInferRequest.FromString(with_parameters(payload, {"user_id": "u-17"}))
    assert (request.model_name, request.id, request.parameters["user_id"].string_param) == ("m", "7", "u-17")


def test_free_ports_are_distinct() -> None:
    ports = free_ports(8)
    assert len(set(ports)) == 8 and all(port > 0 for port in ports)
