"""The h2load engine in open loop: a fixed request rate from a C client, with per-request latency.

h2load sends `--rps` requests per second on each connection whatever the responses do (up to
`STREAMS` outstanding per connection, far above what a server in balance needs), and its
`--log-file` records every request's start and duration, from which the usual percentiles and
windows are computed. The rate is constant, not Poisson (the Python engine does Poisson), and
latency counts from the moment h2load sent the request. As in closed loop, gRPC errors arrive as
HTTP 200: the server's ModelStatistics success count must match, or the difference is reported.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import numpy.typing as npt

from loadtest.engines.h2load_engine import (
    GRPC_HEADERS,
    MAX_CONNECTIONS,
    TIMEOUT_MARGIN_S,
    grpc_frame,
    h2load_duration,
    h2load_version,
    invoke_h2load,
    no_statistics_error,
    require_h2load,
    settled_statistics,
)
from loadtest.engines.python_engine import LoadPlan, Samples
from loadtest.errors import LoadTestError
from loadtest.measure import summarize
from loadtest.results import LevelResult
from loadtest.target import INFER_METHOD, Target, breakdown

#: Streams each connection may have outstanding: the bound on the in-flight requests, per connection.
STREAMS = 256


def read_request_log(path: Path) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], list[str]]:
    """h2load's --log-file -> (start s, end s, codes: "OK" for HTTP 200, else "HTTP_<status>").

    Times count from the first request's start (epoch microseconds as seconds would lose precision).
    """
    rows = [line.split("\t") for line in path.read_text().splitlines() if line.strip()]
    try:
        start_us = np.array([int(row[0]) for row in rows], dtype=np.float64)
        status = [int(row[1]) for row in rows]
        duration_us = np.array([int(row[2]) for row in rows], dtype=np.float64)
    except (IndexError, ValueError):
        raise LoadTestError(f"could not parse h2load's request log {path}") from None
    codes = ["OK" if code == 200 else f"HTTP_{code}" for code in status]
    start_s = (start_us - start_us.min()) / 1e6 if len(start_us) else start_us
    return start_s, start_s + duration_us / 1e6, codes


def run_h2load_open(
    target: Target,
    address: str,
    model: str,
    version: str,
    payload: bytes,
    batch_size: int,
    rate: float,
    warmup_s: float,
    duration_s: float,
    windows: int,
    stability_pct: float,
) -> LevelResult:
    """One open-loop level at `rate` requests/s, spread evenly over h2load's connections."""
    if rate <= 0 or batch_size < 1 or duration_s <= 0 or warmup_s < 0:
        raise LoadTestError("h2load engine: rate and batch size must be > 0, duration > 0, warm-up >= 0")
    require_h2load()
    if target.statistics(model, version) is None:
        raise no_statistics_error()
    connections = MAX_CONNECTIONS
    per_connection = rate / connections
    flags = ["-c", str(connections), "-m", str(STREAMS), "-t", "1", "--rps", f"{per_connection:g}"]
    flags += GRPC_HEADERS
    deadline = time.monotonic() + warmup_s + duration_s + TIMEOUT_MARGIN_S
    with tempfile.TemporaryDirectory(prefix="loadtest-h2load-open-") as folder:
        frame = Path(folder) / "request.grpc"
        frame.write_bytes(grpc_frame(payload))
        log = Path(folder) / "requests.tsv"
        command = ["h2load", *flags, "-d", str(frame), "--log-file", str(log)]
        command += ["-D", h2load_duration(warmup_s + duration_s), f"http://{address}{INFER_METHOD}"]
        before = settled_statistics(target, model, version)
        output = invoke_h2load(command, deadline)
        after = settled_statistics(target, model, version)
        sent, finished, codes = read_request_log(log)
    if not len(sent):
        raise LoadTestError(f"h2load sent no requests: is {address} reachable over plain-text HTTP/2 (h2c)?")
    measure_start = float(sent.min()) + warmup_s
    samples = Samples(sent, finished, codes, measure_start, measure_start + duration_s)
    plan = LoadPlan(mode="open", level=rate, warmup_s=warmup_s, measure_s=duration_s, processes=1, timeout_s=0.0)
    result = summarize(samples, plan, batch_size, windows, stability_pct)
    result.engine = "h2load"
    result.server = breakdown(before, after)
    http_ok = codes.count("OK")
    result.notes.append(
        f"h2load {h2load_version()}: {connections} connections, {per_connection:g} requests/s each (constant spacing), "
        f"up to {STREAMS} outstanding per connection; latency from the moment h2load sent each request"
    )
    if result.server.success_count < http_ok:
        hidden = http_ok - result.server.success_count
        result.notes.append(f"{hidden} HTTP 200 responses were gRPC errors (server counted fewer successes)")
        result.errors_by_code["grpc_error_or_not_counted"] = hidden
        result.requests_failed += hidden
    if output.timeout or output.errored:
        result.notes.append(f"h2load: {output.errored} errored, {output.timeout} timed out")
    return result
