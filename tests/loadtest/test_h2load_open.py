"""The h2load engine in open loop: request-log parsing and a real run against our server on loopback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from loadtest.engines.h2load_open import read_request_log, run_h2load_open
from loadtest.errors import LoadTestError
from loadtest.inputs import encode_request
from loadtest.target import Target
from tests.loadtest.conftest import needs_h2load
from tests.support.servers import ThreadedServer


def test_request_log_columns_become_times_and_codes(tmp_path: Path) -> None:
    log = tmp_path / "requests.tsv"
    log.write_text("1700000000000000\t200\t1500\n1700000000250000\t503\t40\n\n")
    sent, finished, codes = read_request_log(log)
    np.testing.assert_allclose(sent, [0.0, 0.25])
    np.testing.assert_allclose(finished - sent, [0.0015, 0.00004], rtol=1e-6)
    assert codes == ["OK", "HTTP_503"]


def test_a_malformed_request_log_is_a_clear_error(tmp_path: Path) -> None:
    log = tmp_path / "requests.tsv"
    log.write_text("not a number\t200\n")
    with pytest.raises(LoadTestError, match="request log"):
        read_request_log(log)


@needs_h2load
def test_open_loop_sends_the_rate_and_measures_every_request(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"INPUT0": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        result = run_h2load_open(target, identity_server.address, "identity", "", payload, 1, 200.0, 0.5, 2.0, 2, 50.0)
    assert (result.engine, result.mode, result.level) == ("h2load", "open", 200.0)
    assert 300 <= result.requests_ok <= 500  # 200/s for the 2 s measured
    assert result.requests_failed == 0 and result.errors_by_code == {}
    assert result.latency is not None and 0 < result.latency.p50_ms <= result.latency.p99_ms
    assert result.server is not None and result.server.success_count >= result.requests_ok
    assert len(result.windows) == 2
    assert any("constant spacing" in note for note in result.notes)


@needs_h2load
def test_grpc_errors_in_open_loop_are_counted_as_failures(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"WRONG": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        result = run_h2load_open(target, identity_server.address, "identity", "", payload, 1, 100.0, 0.0, 1.0, 1, 50.0)
    assert result.errors_by_code.get("grpc_error_or_not_counted", 0) > 0
