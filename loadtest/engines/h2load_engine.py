"""The h2load engine: closed-loop maximum throughput from nghttp2's h2load, sending one pre-encoded gRPC frame.

h2load only sees HTTP: a gRPC error travels in the trailers of an HTTP 200 response, so h2load counts it
as a success. Successes are therefore taken from the server's ModelStatistics, read before and after the
measured run; h2load's own counts and its per-request timings only go into the notes.
"""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from loadtest.errors import LoadTestError
from loadtest.results import LevelResult
from loadtest.target import INFER_METHOD, STREAM_INFER_METHOD, StatsSnapshot, Target, breakdown

MAX_CONNECTIONS = 4
TIMEOUT_MARGIN_S = 30.0
#: How long to wait for requests cut off by the end of an h2load run to reach the server's statistics.
_SETTLE_S = 1.0
_SETTLE_POLL_S = 0.05


def h2load_available() -> bool:
    return shutil.which("h2load") is not None


def require_h2load() -> None:
    if not h2load_available():
        raise LoadTestError(
            "h2load is not installed: run loadtest/setup_h2load.sh as root (it runs apt-get install nghttp2-client)"
        )


#: h2load's headers for a gRPC call (HTTP/2 POST of one length-prefixed message).
GRPC_HEADERS = ("-H", "content-type: application/grpc", "-H", "te: trailers")


def spread(concurrency: int, connections: int | None = None) -> tuple[int, int]:
    """(connections, streams per connection) that carry `concurrency` requests in flight."""
    clients = connections if connections is not None else min(concurrency, MAX_CONNECTIONS)
    return clients, math.ceil(concurrency / clients)


def grpc_frame(payload: bytes) -> bytes:
    """A gRPC length-prefixed message: compression flag 0, 4-byte big-endian length, then the payload."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


@dataclass(frozen=True, slots=True)
class H2loadOutput:
    """The summary h2load prints at the end of a run."""

    finished_s: float
    req_per_s: float
    total: int
    started: int
    done: int
    succeeded: int
    """Completed with HTTP 2xx or 3xx; includes gRPC errors, which come as HTTP 200."""
    failed: int
    """HTTP-level failures, `errored` included."""
    errored: int
    """Streams that failed before a complete response (reset, connection lost)."""
    timeout: int
    status_2xx: int
    status_3xx: int
    status_4xx: int
    status_5xx: int
    request_min_ms: float | None
    request_max_ms: float | None
    request_mean_ms: float | None
    request_sd_ms: float | None


_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3}
_FINISHED = re.compile(r"^finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", re.MULTILINE)
_REQUESTS = re.compile(
    r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout",
    re.MULTILINE,
)
_STATUS = re.compile(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", re.MULTILINE)
_TIME = r"([\d.]+)(us|ms|s)"
_REQUEST_TIME = re.compile(rf"^time for request:\s+{_TIME}\s+{_TIME}\s+{_TIME}\s+{_TIME}", re.MULTILINE)


def parse_h2load_output(text: str) -> H2loadOutput:
    """h2load's stdout -> its counters and request-time summary (in ms; None when absent)."""
    finished, requests, status = _FINISHED.search(text), _REQUESTS.search(text), _STATUS.search(text)
    if finished is None or requests is None or status is None:
        raise LoadTestError("could not parse h2load's output (no 'finished in', 'requests:' or 'status codes:' line)")
    counts = [int(value) for value in requests.groups()]
    codes = [int(value) for value in status.groups()]
    times: list[float | None] = [None] * 4
    request_time = _REQUEST_TIME.search(text)
    if request_time is not None:
        values = request_time.groups()
        times = [float(values[i]) * _UNIT_MS[values[i + 1]] for i in range(0, 8, 2)]
    return H2loadOutput(
        float(finished.group(1)) * _UNIT_MS[finished.group(2)] / 1e3,
        float(finished.group(3)),
        *counts,
        *codes,
        *times,
    )


def run_h2load(
    target: Target,
    address: str,
    model: str,
    version: str,
    payload: bytes,
    batch_size: int,
    concurrency: int,
    warmup_s: float,
    duration_s: float,
    connections: int | None = None,
    threads: int = 1,
    *,
    count_http_successes: bool = False,
    stream_messages: int = 0,
) -> LevelResult:
    """One closed-loop level: `concurrency` = h2load connections x concurrent streams per connection.

    `payload` is a serialized ModelInferRequest for `model`, sent unchanged on every stream.
    Successes come from the target's ModelStatistics, unless `count_http_successes` is set for a
    target that cannot answer with a gRPC error (the floor server): then h2load's HTTP successes count.
    With `stream_messages` > 0 each h2load request is a ModelStreamInfer stream carrying that many copies of
    `payload` in one body (then half-closed): `concurrency` streams, each with its messages in flight at once;
    successes (from ModelStatistics) count messages.
    """
    if stream_messages and count_http_successes:
        raise LoadTestError("h2load engine: streamed messages are counted from ModelStatistics only")
    if concurrency < 1 or batch_size < 1 or duration_s <= 0 or warmup_s < 0:
        raise LoadTestError("h2load engine: concurrency and batch size must be >= 1, duration > 0, warm-up >= 0")
    if connections is not None and connections < 1:
        raise LoadTestError("h2load engine: connections must be >= 1")
    require_h2load()
    deadline = time.monotonic() + warmup_s + duration_s + TIMEOUT_MARGIN_S
    clients, streams = spread(concurrency, connections)
    flags = ["-c", str(clients), "-m", str(streams), "-t", str(max(1, min(threads, clients))), *GRPC_HEADERS]
    url = f"http://{address}{STREAM_INFER_METHOD if stream_messages else INFER_METHOD}"

    if not count_http_successes and target.statistics(model, version) is None:
        raise no_statistics_error()
    with tempfile.TemporaryDirectory(prefix="loadtest-h2load-") as folder:
        frame = Path(folder) / "request.grpc"
        frame.write_bytes(grpc_frame(payload) * max(1, stream_messages))
        command = ["h2load", *flags, "-d", str(frame)]
        if warmup_s > 0:
            invoke_h2load([*command, "-D", h2load_duration(warmup_s), url], deadline)
        before = None if count_http_successes else settled_statistics(target, model, version)
        output = invoke_h2load([*command, "-D", h2load_duration(duration_s), url], deadline)
        after = None if count_http_successes else settled_statistics(target, model, version)
    if output.started == 0:
        raise LoadTestError(f"h2load started no requests: is {address} reachable over plain-text HTTP/2 (h2c)?")

    server = None if before is None or after is None else breakdown(before, after)
    successes = output.succeeded if server is None else server.success_count
    measured_s = output.finished_s if output.finished_s > 0 else duration_s
    errors = {
        "grpc_error_or_not_counted": max(0, output.succeeded * max(1, stream_messages) - successes),
        "http_failed": output.failed,
    }
    errors = {code: count for code, count in errors.items() if count}
    notes = [
        f"h2load {h2load_version()}: {' '.join(flags[:6])} -D {h2load_duration(duration_s)}: "
        f"{clients} connections x {streams} streams = {clients * streams} requests in flight"
        + (f" (asked for {concurrency})" if clients * streams != concurrency else "")
        + (
            f"; each a ModelStreamInfer stream of {stream_messages} messages ({clients * streams * stream_messages} "
            "messages in flight)"
            if stream_messages
            else ""
        ),
        f"h2load requests: {output.started} started, {output.done} done, {output.succeeded} succeeded (HTTP 2xx/3xx, "
        f"gRPC errors included), {output.failed} failed, {output.errored} errored, {output.timeout} timeout; "
        f"status codes {output.status_2xx} 2xx, {output.status_3xx} 3xx, {output.status_4xx} 4xx, "
        f"{output.status_5xx} 5xx",
        f"h2load finished in {output.finished_s:.2f}s, {output.req_per_s:.2f} req/s (HTTP level)",
        f"server ModelStatistics over the run: {successes} successes, {server.fail_count} failures"
        if server is not None
        else f"successes counted from h2load's HTTP 2xx responses ({successes}): the target cannot fail a request",
    ]
    if output.request_mean_ms is not None and output.succeeded:
        notes.append(
            f"h2load time for request (HTTP successes, no percentiles): min {output.request_min_ms:.3f} ms, "
            f"max {output.request_max_ms:.3f} ms, mean {output.request_mean_ms:.3f} ms, "
            f"sd {output.request_sd_ms:.3f} ms"
        )
    return LevelResult(
        mode="closed",
        level=float(concurrency),
        engine="h2load",
        batch_size=batch_size,
        duration_s=measured_s,
        requests_ok=successes,
        requests_failed=sum(errors.values()),
        errors_by_code=errors,
        throughput_req_per_s=successes / measured_s,
        throughput_infer_per_s=successes * batch_size / measured_s,
        latency=None,
        server=server,
        notes=notes,
    )


def no_statistics_error() -> LoadTestError:
    return LoadTestError("h2load engine needs ModelStatistics on the target to count successes; use --engine python")


def h2load_duration(seconds: float) -> str:
    """h2load's <DURATION>: an integer with a unit."""
    return f"{max(1, round(seconds * 1000))}ms"


def invoke_h2load(command: list[str], deadline: float) -> H2loadOutput:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise LoadTestError("h2load engine: ran out of time before the measured run")
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=remaining, check=False)
    except subprocess.TimeoutExpired:
        raise LoadTestError(f"h2load did not finish within {remaining:.0f}s and was killed") from None
    except OSError as error:
        raise LoadTestError(f"cannot run h2load: {error}") from None
    if completed.returncode != 0:
        lines = (completed.stderr.strip() or completed.stdout.strip() or "no output").splitlines()
        raise LoadTestError(f"h2load exited with status {completed.returncode}: {lines[-1]}")
    return parse_h2load_output(completed.stdout)


def settled_statistics(target: Target, model: str, version: str) -> StatsSnapshot:
    """Statistics once requests cut off by the end of an h2load run have been counted (or after `_SETTLE_S`)."""
    snapshot = target.statistics(model, version)
    give_up = time.monotonic() + _SETTLE_S
    while snapshot is not None and time.monotonic() < give_up:
        time.sleep(_SETTLE_POLL_S)
        following = target.statistics(model, version)
        if following == snapshot:
            return snapshot
        snapshot = following
    if snapshot is None:
        raise no_statistics_error()
    return snapshot


def h2load_version() -> str:
    try:
        completed = subprocess.run(["h2load", "--version"], capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "(unknown version)"
    return completed.stdout.strip().removeprefix("h2load ") or "(unknown version)"
