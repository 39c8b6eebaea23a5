"""`python -m loadtest`: measure throughput and tail latency of an Open Inference Protocol server.

python -m loadtest --target 127.0.0.1:8001 --model fraud --concurrency 1,4,16,64 --baseline
python -m loadtest --target 127.0.0.1:8001 --model fraud --rate 500,1000 --arrival poisson
python -m loadtest compare old/report.json new/report.json
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from loadtest.compare import main_compare
from loadtest.engines.reachability import GIVE_UP_S
from loadtest.errors import LoadTestError
from loadtest.inputs import parse_shapes
from loadtest.report.terminal import Progress
from loadtest.report.writer import write_reports
from loadtest.results import LevelResult
from loadtest.runner import RunOptions, run

_MAX_LEVELS = 20
_MAX_CONCURRENCY = 10_000
_MAX_RATE = 1_000_000.0
_MAX_MEASURE_S = 600.0
_TARGET = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _levels(text: str, flag: str, limit: float) -> tuple[float, ...]:
    try:
        values = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise LoadTestError(f"{flag} {text!r}: expected comma-separated numbers, e.g. 1,4,16,64") from None
    if not values or len(values) > _MAX_LEVELS:
        raise LoadTestError(f"{flag}: give between 1 and {_MAX_LEVELS} levels")
    if any(not 0 < value <= limit for value in values):
        raise LoadTestError(f"{flag}: every level must be > 0 and <= {limit:g}")
    if flag == "--concurrency" and any(value != int(value) for value in values):
        raise LoadTestError("--concurrency: levels are whole numbers of requests in flight")
    return values


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="server address HOST:PORT")
    parser.add_argument("--model", required=True, help="model name")
    parser.add_argument("--version", default="", help="model version (default: the server decides)")
    parser.add_argument("--batch", type=int, default=1, help="batch size of each request (default 1)")
    parser.add_argument("--shape", action="append", default=[], help="NAME:D1,D2 for variable dims, without batch")
    parser.add_argument("--input-data", type=Path, help="inputs from .npz/.npy/.json instead of random data")
    load = parser.add_mutually_exclusive_group()
    load.add_argument("--concurrency", help="closed loop: requests in flight, e.g. 1,4,16,64 (default 1)")
    load.add_argument("--rate", help="open loop: requests per second, e.g. 500,1000")
    parser.add_argument("--arrival", choices=("constant", "poisson"), default="constant", help="open-loop arrivals")
    parser.add_argument("--engine", choices=("python", "h2load"), default="python", help="load generator")
    parser.add_argument("--processes", type=int, default=2, help="client processes of the python engine")
    parser.add_argument(
        "--stream-messages",
        type=int,
        default=0,
        help="h2load closed loop: each request is a ModelStreamInfer stream of this many messages (default 0: unary)",
    )
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds of warm-up per level")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per measurement window")
    parser.add_argument("--windows", type=int, default=3, help="measurement windows per level")
    parser.add_argument("--timeout", type=float, default=10.0, help="per-request deadline, seconds")
    parser.add_argument("--stability", type=float, default=10.0, help="windows within this %% count as stable")
    parser.add_argument(
        "--max-unreachable",
        type=float,
        default=GIVE_UP_S,
        help=f"stop once the server has been unreachable this many seconds (default {GIVE_UP_S:g})",
    )
    parser.add_argument("--baseline", action="store_true", help="also measure the gRPC floor (and ORT ceiling)")
    parser.add_argument("--model-repository", type=Path, help="where the model file is, for the ORT baseline")
    parser.add_argument("--intra-op-threads", type=int, default=0, help="ORT baseline threads (0 = ORT decides)")
    parser.add_argument("--output-dir", type=Path, help="where reports go (default loadtest/results/<model>-<time>)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (they need matplotlib)")
    return parser


def options_from_args(args: argparse.Namespace) -> RunOptions:
    if not _TARGET.match(args.target):
        raise LoadTestError(f"--target {args.target!r}: expected HOST:PORT, e.g. 127.0.0.1:8001")
    if args.batch < 1:
        raise LoadTestError("--batch must be at least 1")
    if not 1 <= args.processes <= 64:
        raise LoadTestError("--processes must be between 1 and 64")
    if args.warmup < 0 or args.window <= 0 or args.windows < 1 or args.timeout <= 0:
        raise LoadTestError("--warmup must be >= 0; --window, --windows and --timeout must be positive")
    if args.max_unreachable <= 0:
        raise LoadTestError("--max-unreachable must be positive")
    if args.window * args.windows > _MAX_MEASURE_S:
        raise LoadTestError(f"--window x --windows must stay within {_MAX_MEASURE_S:g} s per level")
    if args.model_repository is not None and not args.model_repository.is_dir():
        raise LoadTestError(f"--model-repository {args.model_repository} is not a directory")
    if args.stream_messages and not (args.engine == "h2load" and not args.rate and not args.baseline):
        raise LoadTestError(
            "--stream-messages needs --engine h2load in closed loop (--concurrency), without --baseline"
        )
    if not 0 <= args.stream_messages <= 1024:
        raise LoadTestError("--stream-messages must be between 0 and 1024")
    mode: Literal["closed", "open"] = "open" if args.rate else "closed"
    if args.rate:
        levels = _levels(args.rate, "--rate", _MAX_RATE)
    else:
        levels = _levels(args.concurrency or "1", "--concurrency", _MAX_CONCURRENCY)
    return RunOptions(
        target=args.target,
        model=args.model,
        version=args.version,
        batch_size=args.batch,
        shapes=parse_shapes(args.shape),
        input_file=args.input_data,
        mode=mode,
        levels=levels,
        arrival=args.arrival,
        engine=args.engine,
        processes=args.processes,
        stream_messages=args.stream_messages,
        warmup_s=args.warmup,
        window_s=args.window,
        windows=args.windows,
        timeout_s=args.timeout,
        stability_pct=args.stability,
        baseline=args.baseline,
        model_repository=args.model_repository,
        intra_op_threads=args.intra_op_threads,
        max_unreachable_s=args.max_unreachable,
    )


def _check_output_dir(path: Path) -> None:
    """Refuse an output directory that cannot be created or written before measuring, not after."""
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise LoadTestError(f"--output-dir {path}: {existing} is not a writable directory")


def _run(argv: Sequence[str]) -> int:
    args = build_parser().parse_args(argv)
    options = options_from_args(args)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output_dir or Path("loadtest") / "results" / f"{options.model}-{stamp}"
    _check_output_dir(output)
    progress = Progress(sys.stderr)
    command = shlex.join(["python", "-m", "loadtest", *argv])
    report = run(options, command, progress, lambda level: progress.done(f"{level.mode} {level.level:g}", _line(level)))
    # 1 when a reporting step failed (its line says which); report.json is written whatever happens.
    return 0 if write_reports(report, output, plots=not args.no_plots) else 1


def _line(level: LevelResult) -> str:
    p99 = f"{level.latency.p99_ms:.2f} ms" if level.latency else "n/a"
    line = f"{level.throughput_infer_per_s:,.0f} infer/s, p99 {p99}, errors {level.requests_failed}"
    if level.unreachable:
        line += "; stopped early: the server stopped answering, so the client backed off and gave up"
    return line


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    try:
        if arguments[:1] == ["compare"]:
            return main_compare([Path(item) for item in arguments[1:]])
        if arguments[:1] == ["run"]:
            arguments = arguments[1:]
        return _run(arguments)
    except LoadTestError as error:
        print(f"loadtest: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return 130
