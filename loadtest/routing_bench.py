"""Throughput with routing on and off, in one run: `python -m loadtest.routing_bench [--rounds 5] [--seconds 8]`.

Builds the repositories of loadtest.routing_repos and, each round, starts our server on each in turn
(same flags, `--intra-op-threads 1`) and loads it with h2load for `--seconds` (closed loop, 64 in
flight, one pre-encoded request carrying the sticky key both as PARAMETERS and as HEADER metadata) after a warm-up:

  off      no [routing]: every request to one version
  decide   sticky routing at 100/0: the key parameter is read and hashed on every request, one version serves
  decide-metadata  the same with the key read from gRPC metadata
  on       90/10 by weighted draw over two versions
  pinned   the "off" server, with the client doing the 90/10 split: two h2load processes pinned to
           version 1 (90 % of the streams) and version 2 (10 %). Serving two versions costs this
           much without any routing; "on" against "pinned" is what routing itself costs.

Successes are checked in the server's ModelStatistics (h2load counts HTTP successes only). Rounds
interleave the configurations, so drift on a shared machine hits them alike; the report gives each
configuration's median req/s and its ratio to "off".
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.engines.h2load_engine import (
    GRPC_HEADERS,
    grpc_frame,
    h2load_duration,
    parse_h2load_output,
    require_h2load,
    spread,
)
from loadtest.errors import LoadTestError
from loadtest.inputs import with_parameters
from loadtest.local_server import free_ports, stop, wait_until_ready
from loadtest.routing_repos import HEADER, PARAMETERS, build
from loadtest.runner import RunOptions, prepare
from loadtest.target import INFER_METHOD, Target

WARMUP_S = 2.0
#: (repository, [(pinned version or "" for the router, share of the in-flight requests)]).
LOADS: dict[str, tuple[str, list[tuple[str, float]]]] = {
    "off": ("off", [("", 1.0)]),
    "decide": ("decide", [("", 1.0)]),
    "decide-metadata": ("decide-metadata", [("", 1.0)]),
    "on": ("on", [("", 1.0)]),
    "pinned": ("off", [("1", 0.9), ("2", 0.1)]),
}


def _start_h2load(address: str, frame: Path, concurrency: int, seconds: float) -> subprocess.Popen[str]:
    connections, streams = spread(concurrency)
    command = ["h2load", "-D", h2load_duration(seconds), "-c", str(connections), "-m", str(streams), "-d", str(frame),
               *GRPC_HEADERS, "-H", HEADER, f"http://{address}{INFER_METHOD}"]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def _load(address: str, frames: list[tuple[Path, int]], seconds: float) -> tuple[float, int]:
    """Run one h2load per (frame, concurrency) at once for `seconds`; (total req/s, HTTP successes)."""
    processes = [_start_h2load(address, frame, concurrency, seconds) for frame, concurrency in frames]
    outputs = [parse_h2load_output(process.communicate()[0]) for process in processes]
    return sum(output.req_per_s for output in outputs), sum(output.succeeded for output in outputs)


def measure_once(
    repository: Path,
    model: str,
    split: list[tuple[str, float]],
    concurrency: int,
    seconds: float,
    folder: Path,
    warmup_s: float = WARMUP_S,
) -> float:
    """Start our server on `repository`, warm up, and return the measured req/s (every request succeeded)."""
    grpc_port, http_port = free_ports(2)
    address = f"127.0.0.1:{grpc_port}"
    args = [sys.executable, "-m", "server", "--model-repository", str(repository), "--host", "127.0.0.1",
            "--grpc-port", str(grpc_port), "--metrics-host", "127.0.0.1", "--metrics-port", str(http_port),
            "--intra-op-threads", "1", "--state-dir", str(folder / "state"), "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(http_port, process, 120)
        with Target(address) as target:
            frames = []
            for version, share in split:
                prepared = prepare(target, RunOptions(target=address, model=model, version=version))
                frame = folder / f"request-{version or 'routed'}.grpc"
                frame.write_bytes(grpc_frame(with_parameters(prepared.payload, PARAMETERS)))
                frames.append((frame, max(1, round(concurrency * share))))
            _load(address, frames, warmup_s)
            before = target.statistics(model)
            rate, succeeded = _load(address, frames, seconds)
            time.sleep(0.3)  # statistics are counted as responses are written
            after = target.statistics(model)
        if before is None or after is None or after.success_count - before.success_count < succeeded:
            raise LoadTestError(f"not every request succeeded on {repository.name}")
        return rate
    finally:
        stop(process, 60)


def run(
    model: str, source: Path, rounds: int, seconds: float, concurrency: int, warmup_s: float = WARMUP_S
) -> dict[str, Any]:
    require_h2load()
    with tempfile.TemporaryDirectory(prefix="loadtest-routing-") as tmp:
        folder = Path(tmp)
        repositories = build(source, folder / "repos", model)
        rates: dict[str, list[float]] = {name: [] for name in LOADS}
        for _ in range(rounds):
            for name, (repository, split) in LOADS.items():
                rate = measure_once(repositories[repository], model, split, concurrency, seconds, folder, warmup_s)
                rates[name].append(rate)
    report = summarise(rates, model=model, seconds=seconds, concurrency=concurrency, rounds=rounds)
    medians = report["median_req_per_s"]
    report["ratio_to_off"] = {name: round(v / medians["off"], 3) for name, v in medians.items()}
    report["on_over_pinned"] = round(medians["on"] / medians["pinned"], 3)
    return report


def summarise(rates: dict[str, list[float]], **run: Any) -> dict[str, Any]:
    """The report of interleaved rounds: `run`'s fields, every rate and each configuration's median."""
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        **run,
        "req_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "median_req_per_s": {name: round(v, 1) for name, v in medians.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.routing_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fraud")
    parser.add_argument("--source", type=Path, default=Path("models"), help="repository holding the model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.concurrency < 2 or args.seconds <= 0:
        print("loadtest.routing_bench: error: --rounds >= 1, --concurrency >= 2, --seconds > 0", file=sys.stderr)
        return 2
    try:
        result = run(args.model, args.source, args.rounds, args.seconds, args.concurrency)
    except (LoadTestError, OSError) as error:
        print(f"loadtest.routing_bench: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
