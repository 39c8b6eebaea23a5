"""Our two frontends against NVIDIA Triton and the grpc.aio floor, in one session (issue 12):
`python -m loadtest.peer_bench [--rounds 2] [--out docs/benchmarks/run7-native]`.

Each round starts, in turn, our server with `--frontend python`, our server with `--frontend native`, Triton 2.51
(../shared/peers/triton: C++ gRPC, dynamic batcher, ONNX Runtime backend) and the grpc.aio floor, all serving
loadtest.peer_models (tiny, mlp, heavy; max batch 32, one instance, one intra-op thread), and measures each model
with `python -m loadtest --engine h2load --concurrency 64` (4 connections x 16 streams, batch-1 requests;
successes from each server's ModelStatistics). Rounds interleave the servers so that drift on a shared machine hits
them alike; the report keeps each configuration's best round. Then, per model, p99 latency in open loop at half of
Triton's maximum rate, for both frontends and Triton.

Where loadtest/setup_mlserver.sh has installed it (/tmp/peer-mlserver), each round also measures Seldon MLServer
("mlserver": our ONNX Runtime custom runtime, adaptive batching, loadtest/mlserver_peer.py) on mlp only, at the same
level; its successes come from its Prometheus counters, as it has no ModelStatistics. Without it, one line says so.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from loadtest import mlserver_peer, peer_models
from loadtest.local_server import free_ports, stop, wait_until_ready

TRITON = Path(__file__).resolve().parents[2] / "shared" / "peers" / "triton"
TRITON_GRPC = "127.0.0.1:8091"
CONFIGURATIONS = ("python", "native", "triton", "floor")
MLSERVER_MODELS = ("mlp",)
"""The models the optional "mlserver" configuration is measured on."""


@contextmanager
def our_server(repository: Path, frontend: str) -> Iterator[str]:
    grpc_port, http_port = free_ports(2)
    command = [sys.executable, "-m", "server", "--model-repository", str(repository), "--host", "127.0.0.1",
               "--grpc-port", str(grpc_port), "--metrics-port", str(http_port), "--metrics-host", "127.0.0.1",
               "--intra-op-threads", "1", "--frontend", frontend, "--log-level", "WARNING"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(http_port, process, 120.0)
        yield f"127.0.0.1:{grpc_port}"
    finally:
        stop(process, 30.0)


@contextmanager
def triton(repository: Path) -> Iterator[str]:
    subprocess.run([str(TRITON / "start.sh"), str(repository)], check=True, stdout=subprocess.DEVNULL)
    try:
        yield TRITON_GRPC
    finally:
        subprocess.run([str(TRITON / "stop.sh")], check=False, stdout=subprocess.DEVNULL)


IN_FLIGHT = 64
"""Requests in flight in closed loop: 4 connections x 16 streams, or streams of `--stream-messages` messages."""


def load(
    target: str,
    model: str,
    out: Path,
    *,
    rate: float | None = None,
    seconds: float = 2.0,
    floor_of: Path | None = None,
    stream_messages: int = 0,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One level of `python -m loadtest` (h2load): its report's level, and the grpc.aio floor's at the same level
    when `floor_of` (the model repository) asks for the baselines. `stream_messages`: ModelStreamInfer streams of
    that many messages each, IN_FLIGHT messages in flight in all."""
    if stream_messages:
        level = ["--concurrency", str(max(1, IN_FLIGHT // stream_messages)), "--stream-messages", str(stream_messages)]
    else:
        level = ["--rate", str(int(rate))] if rate else ["--concurrency", str(IN_FLIGHT)]
    baseline = ["--baseline", "--model-repository", str(floor_of)] if floor_of is not None else []
    command = [sys.executable, "-m", "loadtest", "--target", target, "--model", model, "--engine", "h2load",
               *level, "--warmup", "1", "--window", str(seconds), "--windows", "2", "--no-plots",
               "--output-dir", str(out), *baseline]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    report = json.loads((out / "report.json").read_text())
    floor = next((b["levels"][0] for b in report.get("baselines") or () if b["name"] == "grpc_floor"), None)
    return report["levels"][0], floor


def load_mlserver(repository: Path, model: str, out: Path, seconds: float = 2.0) -> dict[str, Any]:
    """MLServer started for `model` alone, measured like `load` (no floor); its level, also saved in out/level.json."""
    ports = mlserver_peer.Ports.free()
    with mlserver_peer.mlserver(repository, model, ports=ports) as target:
        level = mlserver_peer.load(target, ports.metrics, model, seconds=seconds)
    out.mkdir(parents=True, exist_ok=True)
    (out / "level.json").write_text(json.dumps(level, indent=2))
    return level


def measure(
    repository: Path,
    out: Path,
    rounds: int,
    models: Sequence[str],
    mlserver_models: Sequence[str] = (),
    stream_messages: int = 0,
) -> dict[str, Any]:
    """Each configuration's best throughput per model over `rounds`, then p99 at half of Triton's best; with
    `stream_messages`, ModelStreamInfer throughput only (no floor, no half-load: h2load's streams are closed loop)."""
    best: dict[str, dict[str, float]] = {config: {} for config in CONFIGURATIONS}
    if mlserver_models:
        best["mlserver"] = {}
    runs: list[dict[str, Any]] = []
    servers = {
        "python": lambda: our_server(repository, "python"),
        "native": lambda: our_server(repository, "native"),
        "triton": lambda: triton(repository),
    }
    for round_index in range(rounds):
        for config in ("python", "native", "triton"):
            with servers[config]() as target:
                for model in models:
                    # The floor once per round, beside the Python frontend on tiny (same response bytes).
                    with_floor = repository if (config, model) == ("python", "tiny") and not stream_messages else None
                    level, floor_level = load(
                        target,
                        model,
                        out / f"r{round_index}-{config}-{model}",
                        floor_of=with_floor,
                        stream_messages=stream_messages,
                    )
                    if floor_level is not None:
                        floor_rate = float(floor_level["throughput_req_per_s"])
                        best["floor"]["tiny"] = max(best["floor"].get("tiny", 0.0), floor_rate)
                        print(f"round {round_index} floor   tiny   {floor_rate:10.0f} req/s", flush=True)
                    rate = float(level["throughput_req_per_s"])
                    runs.append({"round": round_index, "config": config, "model": model, "req_per_s": rate})
                    best[config][model] = max(best[config].get(model, 0.0), rate)
                    print(f"round {round_index} {config:7s} {model:6s} {rate:10.0f} req/s", flush=True)
        for model in mlserver_models:
            level = load_mlserver(repository, model, out / f"r{round_index}-mlserver-{model}")
            rate = float(level["throughput_req_per_s"])
            runs.append({"round": round_index, "config": "mlserver", "model": model, "req_per_s": rate})
            best["mlserver"][model] = max(best["mlserver"].get(model, 0.0), rate)
            print(f"round {round_index} mlserver {model:6s} {rate:9.0f} req/s", flush=True)
    half: list[dict[str, Any]] = []
    for model in models if not stream_messages else ():
        rate = best["triton"][model] / 2
        for config in ("python", "native", "triton"):
            with servers[config]() as target:
                level, _ = load(target, model, out / f"half-{config}-{model}", rate=rate, seconds=3.0)
                latency = level.get("latency") or {}
                half.append({"config": config, "model": model, "rate": rate, "p99_ms": latency.get("p99_ms"),
                             "p50_ms": latency.get("p50_ms"), "ok": level["requests_ok"]})  # fmt: skip
                print(f"half-load {config:7s} {model:6s} {rate:8.0f}/s p99 {half[-1]['p99_ms']} ms", flush=True)
    results: dict[str, Any] = {"best": best, "runs": runs, "half_load": half}
    if mlserver_models:
        results["vs_mlserver"] = against_mlserver(best)
    return results


def against_mlserver(best: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each configuration's best rate over MLServer's, per model MLServer was measured on (the ">= 3x MLServer"
    target reads native/mlserver on mlp)."""
    ratios: dict[str, dict[str, float]] = {}
    for model, reference in best.get("mlserver", {}).items():
        for config, rates in best.items():
            if config != "mlserver" and reference > 0 and rates.get(model):
                ratios.setdefault(config, {})[model] = round(rates[model] / reference, 2)
    return ratios


def mlserver_plan(models: Sequence[str]) -> tuple[str, ...]:
    """The models to measure MLServer on: mlp when asked for and MLServer is installed (else one line says why not)."""
    wanted = tuple(model for model in models if model in MLSERVER_MODELS)
    if wanted and not mlserver_peer.available():
        print(f"mlserver: skipped, {mlserver_peer.VENV} is missing (bash loadtest/setup_mlserver.sh installs it)")
        return ()
    return wanted


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.peer_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--models", default="tiny,mlp,heavy")
    parser.add_argument("--repository", type=Path, default=Path("build/peer-models"))
    parser.add_argument("--out", type=Path, default=Path(f"build/peer-bench-{time.strftime('%Y%m%d-%H%M%S')}"))
    parser.add_argument(
        "--stream-messages",
        type=int,
        default=0,
        help="measure ModelStreamInfer instead: streams of this many messages, 64 messages in flight (default 0)",
    )
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    peer_models.build(args.repository)
    models = args.models.split(",")
    streamed = args.stream_messages
    plan = mlserver_plan(models) if not streamed else ()
    results = measure(args.repository, args.out, args.rounds, models, plan, stream_messages=streamed)
    results["machine"] = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results["best"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
