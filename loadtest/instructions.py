"""CPU instructions per request, ours against the gRPC floor.

`python -m loadtest.instructions --model-repository DIR --model NAME [--requests N] [--concurrency C]`

Throughput on a shared VM varies by ±30 % between identical runs; instruction counts do not. Each
server (ours, then the floor replaying our response) runs under valgrind's callgrind. h2load sends a
warm-up, the counters are zeroed, h2load sends `--requests` more at `--concurrency`, and the counters
are dumped. The instructions of every thread of the server process, divided by the requests, are the
CPU work one request costs, whatever else the machine was doing. valgrind runs the program about 50
times slower and one thread at a time, so batches are not those of a real run; the comparison is of work.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from loadtest.baselines import FloorServer, canned_response
from loadtest.engines.h2load_engine import GRPC_HEADERS, grpc_frame, parse_h2load_output, require_h2load, spread
from loadtest.errors import LoadTestError
from loadtest.inputs import with_parameters
from loadtest.local_server import free_ports, stop, wait_until_ready
from loadtest.runner import RunOptions, prepare
from loadtest.target import INFER_METHOD, Target

_START_TIMEOUT_S = 900.0  # imports and model loading under valgrind take minutes
_SUMMARY = re.compile(r"^(?:summary|totals): (\d+)", re.MULTILINE)


def valgrind_command(out_prefix: Path) -> list[str]:
    """The launcher that runs a command under callgrind, dumping to `<out_prefix>.<pid>[.<n>]`."""
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_prefix}.%p", f"--log-file={out_prefix}.log"]


def parse_summary(text: str) -> int:
    """Total instructions (Ir) of one callgrind dump."""
    match = _SUMMARY.search(text)
    if match is None:
        raise LoadTestError("a callgrind dump without a 'summary:' or 'totals:' line")
    return int(match.group(1))


def _h2load(address: str, frame: Path, requests: int, concurrency: int, headers: Sequence[str] = ()) -> None:
    connections, streams = spread(concurrency)
    extra = [flag for header in headers for flag in ("-H", header)]
    command = ["h2load", "-n", str(requests), "-c", str(connections), "-m", str(streams), "-d", str(frame),
               *GRPC_HEADERS, *extra, f"http://{address}{INFER_METHOD}"]  # fmt: skip
    completed = subprocess.run(command, capture_output=True, text=True, check=False)
    output = parse_h2load_output(completed.stdout)
    if output.succeeded != requests:
        raise LoadTestError(f"h2load: {output.succeeded} of {requests} requests succeeded at the HTTP level")


def _counted(pid: int, out_prefix: Path, run: Callable[[], None]) -> int:
    """Instructions spent by process `pid` while `run()` executes (callgrind counters zeroed, then dumped)."""
    subprocess.run(["callgrind_control", "-z", str(pid)], capture_output=True, check=True)
    run()
    before = set(out_prefix.parent.glob(f"{out_prefix.name}.{pid}.*"))
    subprocess.run(["callgrind_control", "-d", str(pid)], capture_output=True, check=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        dumps = set(out_prefix.parent.glob(f"{out_prefix.name}.{pid}.*")) - before
        if dumps:
            time.sleep(1.0)  # let callgrind finish writing
            return parse_summary(max(dumps, key=lambda path: path.stat().st_mtime).read_text())
        time.sleep(0.2)
    raise LoadTestError("callgrind did not write the requested dump")


def measure(
    repository: Path,
    model: str,
    requests: int,
    concurrency: int,
    extra: Sequence[str] = (),
    headers: Sequence[str] = (),
    parameters: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Instructions per request of our server and of the floor.

    `headers` (gRPC metadata) and string request `parameters` go with every request, to both.
    """
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            raise LoadTestError(f"{tool} is not installed (Debian package valgrind)")
    require_h2load()
    warmup = max(200, requests // 5)
    with tempfile.TemporaryDirectory(prefix="loadtest-instructions-") as tmp:
        folder = Path(tmp)
        grpc_port, http_port = free_ports(2)
        address = f"127.0.0.1:{grpc_port}"
        ours_prefix = folder / "ours"
        args = [*valgrind_command(ours_prefix), sys.executable, "-m", "server", "--model-repository", str(repository),
                "--host", "127.0.0.1", "--grpc-port", str(grpc_port), "--metrics-host", "127.0.0.1",
                "--metrics-port", str(http_port), "--log-level", "WARNING", *extra]  # fmt: skip
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(http_port, process, _START_TIMEOUT_S)
            with Target(address) as target:
                prepared = prepare(target, RunOptions(target=address, model=model))
            frame = folder / "request.grpc"
            payload = with_parameters(prepared.payload, parameters or {})
            frame.write_bytes(grpc_frame(payload))
            response = canned_response(address, payload)
            _h2load(address, frame, warmup, concurrency, headers)
            load = functools.partial(_h2load, address, frame, requests, concurrency, headers)
            ours = _counted(process.pid, ours_prefix, load)
        finally:
            stop(process, 300)
        floor_prefix = folder / "floor"
        with FloorServer(response, launcher=valgrind_command(floor_prefix), start_timeout_s=_START_TIMEOUT_S) as floor:
            _h2load(floor.address, frame, warmup, concurrency, headers)
            floor_total = _counted(
                floor.pid, floor_prefix, lambda: _h2load(floor.address, frame, requests, concurrency, headers)
            )
    return {
        "model": model,
        "requests": requests,
        "concurrency": concurrency,
        "ours_instructions_per_request": round(ours / requests),
        "floor_instructions_per_request": round(floor_total / requests),
        "floor_over_ours": round(floor_total / ours, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.instructions", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--requests", type=int, default=3000, help="measured requests (after a warm-up)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for our server, repeatable")
    parser.add_argument(
        "--header", action="append", default=[], help="gRPC metadata sent with every request, e.g. 'user_id: u-17'"
    )
    parser.add_argument(
        "--parameter", action="append", default=[], help="string request parameter NAME=VALUE, e.g. user_id=u-17"
    )
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1:
        print("loadtest.instructions: error: --requests and --concurrency must be >= 1", file=sys.stderr)
        return 2
    parameters = dict(item.partition("=")[::2] for item in args.parameter)
    try:
        result = measure(
            args.model_repository, args.model, args.requests, args.concurrency, args.server_arg, args.header, parameters
        )
    except (LoadTestError, OSError, subprocess.CalledProcessError) as error:
        print(f"loadtest.instructions: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
