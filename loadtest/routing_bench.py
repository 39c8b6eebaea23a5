"""Throughput with routing on and off, in one run: `python -m loadtest.routing_bench [--rounds 3] [--requests 40000]`.

Builds the repositories of loadtest.routing_repos, then for each round starts our server on each of
them in turn (same flags, `--intra-op-threads 1`) and sends `--requests` requests at `--concurrency`
with h2load (closed loop, one pre-encoded request, the HEADER metadata on every request), after a
warm-up. Successes are checked in the server's ModelStatistics (h2load counts HTTP successes only).
Rounds interleave the configurations, so drift on a shared machine hits them alike; the report gives
each configuration's median req/s and its ratio to "off".
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

from loadtest.engines.h2load_engine import GRPC_HEADERS, grpc_frame, parse_h2load_output, require_h2load, spread
from loadtest.errors import LoadTestError
from loadtest.local_server import free_port, stop, wait_until_ready
from loadtest.routing_repos import CONFIGS, HEADER, build
from loadtest.runner import RunOptions, prepare
from loadtest.target import INFER_METHOD, Target


def _h2load(address: str, frame: Path, requests: int, concurrency: int) -> tuple[float, int]:
    """(req/s, HTTP successes) of one h2load run."""
    connections, streams = spread(concurrency)
    command = ["h2load", "-n", str(requests), "-c", str(connections), "-m", str(streams), "-d", str(frame),
               *GRPC_HEADERS, "-H", HEADER, f"http://{address}{INFER_METHOD}"]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    output = parse_h2load_output(completed.stdout)
    return output.req_per_s, output.succeeded


def measure_once(repository: Path, model: str, requests: int, concurrency: int, folder: Path) -> float:
    """Start our server on `repository`, warm up, and return the measured req/s (all requests succeeded)."""
    grpc_port, http_port = free_port(), free_port()
    address = f"127.0.0.1:{grpc_port}"
    args = [sys.executable, "-m", "server", "--model-repository", str(repository), "--host", "127.0.0.1",
            "--grpc-port", str(grpc_port), "--metrics-host", "127.0.0.1", "--metrics-port", str(http_port),
            "--intra-op-threads", "1", "--state-dir", str(folder / "state"), "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(http_port, process, 120)
        with Target(address) as target:
            prepared = prepare(target, RunOptions(target=address, model=model))
            frame = folder / "request.grpc"
            frame.write_bytes(grpc_frame(prepared.payload))
            _h2load(address, frame, max(1000, requests // 5), concurrency)
            before = target.statistics(model)
            rate, _ = _h2load(address, frame, requests, concurrency)
            time.sleep(0.3)  # statistics are counted when the response is written
            after = target.statistics(model)
        if before is None or after is None or after.success_count - before.success_count != requests:
            raise LoadTestError(f"not every request succeeded on {repository.name}")
        return rate
    finally:
        stop(process, 60)


def run(model: str, source: Path, rounds: int, requests: int, concurrency: int) -> dict[str, Any]:
    require_h2load()
    with tempfile.TemporaryDirectory(prefix="loadtest-routing-") as tmp:
        folder = Path(tmp)
        repositories = build(source, folder / "repos", model)
        rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(rounds):
            for name, repository in repositories.items():
                rates[name].append(measure_once(repository, model, requests, concurrency, folder))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "model": model,
        "requests": requests,
        "concurrency": concurrency,
        "rounds": rounds,
        "req_per_s": {name: [round(v, 1) for v in values] for name, values in rates.items()},
        "median_req_per_s": {name: round(v, 1) for name, v in medians.items()},
        "ratio_to_off": {name: round(v / medians["off"], 3) for name, v in medians.items()},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.routing_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fraud")
    parser.add_argument("--source", type=Path, default=Path("models"), help="repository holding the model")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=40_000, help="measured requests per run")
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args(argv)
    if min(args.rounds, args.requests, args.concurrency) < 1:
        print("loadtest.routing_bench: error: --rounds, --requests and --concurrency must be >= 1", file=sys.stderr)
        return 2
    try:
        result = run(args.model, args.source, args.rounds, args.requests, args.concurrency)
    except (LoadTestError, OSError) as error:
        print(f"loadtest.routing_bench: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
