"""The h2load engine: frame layout, output parsing, and real runs against our server on loopback."""

from __future__ import annotations

import numpy as np
import pytest

from loadtest.baselines import FloorServer, canned_response
from loadtest.engines import h2load_engine
from loadtest.engines.h2load_engine import grpc_frame, parse_h2load_output, run_h2load
from loadtest.errors import LoadTestError
from loadtest.inputs import encode_request
from loadtest.target import Target
from tests.loadtest.conftest import needs_h2load
from tests.support.servers import ThreadedServer

# Captured from h2load nghttp2/1.52.0 against `python -m server` (identity FP32 model):
# `h2load -c 4 -m 2 -D 2 -H 'content-type: application/grpc' -H 'te: trailers' -d frame URL`.
GOOD_RUN = """\
starting benchmark...
spawning thread #0: 4 total client(s). Timing-based test with 0s of warm-up time and 2s of main duration for measurements.
Warm-up started for thread #0.
progress: 25% of clients started
progress: 50% of clients started
progress: 75% of clients started
progress: 100% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 2.00s, 1548.00 req/s, 168.20KB/s
requests: 3096 total, 3104 started, 3096 done, 3096 succeeded, 0 failed, 0 errored, 0 timeout
status codes: 3096 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 336.40KB (344470) total, 9.36KB (9588) headers (space savings 96.18%), 160.24KB (164088) data
                     min         max         mean         sd        +/- sd
time for request:     1.19ms     20.99ms      5.14ms      2.14ms    78.88%
time for connect:       61us       103us        86us        18us    75.00%
time to 1st byte:    12.63ms     16.49ms     14.35ms      1.65ms    50.00%
req/s           :     384.43      389.94      386.94        2.35    50.00%
"""  # noqa: E501 - verbatim h2load output

# The same with `content-type: text/plain` and `-D 500ms`: the server resets every stream.
RESET_RUN = """\
starting benchmark...
spawning thread #0: 4 total client(s). Timing-based test with 0s of warm-up time and 0.5s of main duration for measurements.
Warm-up started for thread #0.
progress: 25% of clients started
progress: 50% of clients started
progress: 75% of clients started
progress: 100% of clients started
Warm-up phase is over for thread #0.
Main benchmark duration is started for thread #0.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.
Stopped all clients for thread #0

finished in 501.07ms, 0.00 req/s, 1.37KB/s
requests: 11 total, 19 started, 11 done, 0 succeeded, 11 failed, 11 errored, 0 timeout
status codes: 0 2xx, 0 3xx, 0 4xx, 0 5xx
traffic: 700B (700) total, 0B (0) headers (space savings 0.00%), 0B (0) data
                     min         max         mean         sd        +/- sd
time for request:        0us         0us         0us         0us     0.00%
time for connect:       85us       134us       115us        21us    75.00%
time to 1st byte:        0us         0us         0us         0us     0.00%
req/s           :       0.00        0.00        0.00        0.00   100.00%
"""  # noqa: E501 - verbatim h2load output


def test_grpc_frame_is_flag_length_payload() -> None:
    frame = grpc_frame(b"abc")
    assert frame == b"\x00\x00\x00\x00\x03abc"
    assert grpc_frame(b"") == b"\x00" * 5
    big = grpc_frame(b"x" * 70_000)
    assert big[:5] == b"\x00" + (70_000).to_bytes(4, "big") and len(big) == 70_005


def test_parse_successful_run() -> None:
    output = parse_h2load_output(GOOD_RUN)
    assert (output.finished_s, output.req_per_s) == (2.0, 1548.0)
    assert (output.total, output.started, output.done, output.succeeded) == (3096, 3104, 3096, 3096)
    assert (output.failed, output.errored, output.timeout) == (0, 0, 0)
    assert (output.status_2xx, output.status_3xx, output.status_4xx, output.status_5xx) == (3096, 0, 0, 0)
    assert output.request_min_ms == pytest.approx(1.19)
    assert output.request_max_ms == pytest.approx(20.99)
    assert output.request_mean_ms == pytest.approx(5.14)
    assert output.request_sd_ms == pytest.approx(2.14)


def test_parse_reset_run_with_microsecond_and_millisecond_units() -> None:
    output = parse_h2load_output(RESET_RUN)
    assert output.finished_s == pytest.approx(0.50107)
    assert (output.done, output.succeeded, output.failed, output.errored) == (11, 0, 11, 11)
    assert output.request_mean_ms == 0.0


def test_parse_rejects_other_output() -> None:
    with pytest.raises(LoadTestError, match="could not parse"):
        parse_h2load_output("-d: Could not open file /nonexistent\n")


def test_missing_h2load_points_to_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h2load_engine, "h2load_available", lambda: False)
    with pytest.raises(LoadTestError, match=r"setup_h2load\.sh"):
        run_h2load(Target("127.0.0.1:1"), "127.0.0.1:1", "m", "", b"", 1, 8, 0.0, 1.0)


def test_target_without_statistics_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoStatistics:
        def statistics(self, model: str, version: str = "") -> None:
            return None

    monkeypatch.setattr(h2load_engine, "h2load_available", lambda: True)
    with pytest.raises(LoadTestError, match="--engine python"):
        run_h2load(NoStatistics(), "127.0.0.1:1", "m", "", b"", 1, 8, 0.0, 1.0)  # type: ignore[arg-type]


@needs_h2load
def test_successes_come_from_server_statistics(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"INPUT0": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        before = target.statistics("identity", "")
        result = run_h2load(target, identity_server.address, "identity", "", payload, 1, 8, 0.0, 2.0)
        after = target.statistics("identity", "")
    assert before is not None and after is not None
    assert result.requests_ok > 0
    assert result.requests_ok == after.success_count - before.success_count
    assert result.server is not None and result.server.success_count == result.requests_ok
    assert result.requests_failed == 0 and result.errors_by_code == {}
    assert result.throughput_infer_per_s > 0
    assert result.throughput_infer_per_s == pytest.approx(result.requests_ok / result.duration_s)
    assert (result.engine, result.mode, result.level, result.latency) == ("h2load", "closed", 8.0, None)
    assert any("4 connections x 2 streams" in note for note in result.notes)


@needs_h2load
def test_grpc_errors_behind_http_200_are_failures(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"WRONG_NAME": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        result = run_h2load(target, identity_server.address, "identity", "", payload, 1, 8, 0.2, 1.0)
    assert result.requests_ok == 0
    assert result.requests_failed > 0
    assert result.errors_by_code.get("grpc_error_or_not_counted", 0) > 0
    assert result.throughput_infer_per_s == 0.0


@needs_h2load
def test_the_floor_server_is_counted_from_http_successes(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"INPUT0": np.zeros((1, 3), np.float32)})
    canned = canned_response(identity_server.address, payload)
    with FloorServer(canned) as floor, Target(floor.address) as floor_target:
        result = run_h2load(
            floor_target, floor.address, "identity", "", payload, 1, 8, 0.0, 1.0, count_http_successes=True
        )
    assert result.requests_ok > 0
    assert result.server is None  # the floor has no statistics: nothing to break down
    assert result.requests_failed == 0
    assert any("HTTP 2xx" in note for note in result.notes)


@needs_h2load
def test_streamed_messages_are_counted_from_server_statistics(identity_server: ThreadedServer) -> None:
    payload = encode_request("identity", "", {"INPUT0": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        before = target.statistics("identity", "")
        result = run_h2load(target, identity_server.address, "identity", "", payload, 1, 4, 0.0, 1.0, stream_messages=8)
        after = target.statistics("identity", "")
    assert before is not None and after is not None
    assert result.requests_ok > 0 and result.requests_ok == after.success_count - before.success_count
    assert result.requests_failed == 0
    assert any("ModelStreamInfer stream of 8 messages (32 messages in flight)" in note for note in result.notes)


@needs_h2load
def test_streamed_messages_that_fail_in_band_are_failures(identity_server: ThreadedServer) -> None:
    # A failed message is an error_message on a stream that still ends OK: only the statistics tell.
    payload = encode_request("identity", "", {"WRONG_NAME": np.zeros((1, 3), np.float32)})
    with Target(identity_server.address) as target:
        result = run_h2load(target, identity_server.address, "identity", "", payload, 1, 4, 0.0, 1.0, stream_messages=4)
    assert result.requests_ok == 0
    assert result.errors_by_code.get("grpc_error_or_not_counted", 0) > 0
