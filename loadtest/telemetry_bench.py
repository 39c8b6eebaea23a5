"""Throughput with prediction telemetry off and on, in one run: `python -m loadtest.telemetry_bench`.

Two repositories hold the same `fraud` version (1, the logistic regression, with its reference profile):
`off/` with `[telemetry] enabled = false`, `on/` with the default watches (its `scores` output as class
probabilities: the argmax counted and a 20-bucket histogram per class; its `label` output counted per
class). Each round starts our server on each in turn and loads it with h2load exactly as
loadtest.routing_bench does (64 in flight, closed loop, successes checked in ModelStatistics); the
report gives each configuration's median req/s and the ratio on/off. For instructions per request:

    python -m loadtest.telemetry_bench --repositories-only --out build/telemetry-bench
    python -m loadtest.instructions --model-repository build/telemetry-bench/off --model fraud
    python -m loadtest.instructions --model-repository build/telemetry-bench/on --model fraud
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.engines.h2load_engine import require_h2load
from loadtest.errors import LoadTestError
from loadtest.routing_bench import WARMUP_S, measure_once, summarise

CONFIGS = {
    "off": "max_batch_size = 64\n\n[telemetry]\nenabled = false\n",
    "on": "max_batch_size = 64\n",
}


def build(source: Path, out: Path, model: str = "fraud", version: str = "1") -> dict[str, Path]:
    """Write out/off and out/on, each with `model` version 1 copied from `source` (model and profile)."""
    version_dir = source / model / version
    if not (version_dir / "model.onnx").is_file():
        raise FileNotFoundError(f"{version_dir / 'model.onnx'} is missing (run `make models`)")
    repositories = {}
    for name, config in CONFIGS.items():
        target = out / name / model / "1"
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(version_dir, target)
        (out / name / model / "config.toml").write_text(config)
        repositories[name] = out / name
    return repositories


def run(model: str, source: Path, rounds: int, seconds: float, concurrency: int) -> dict[str, Any]:
    require_h2load()
    with tempfile.TemporaryDirectory(prefix="loadtest-telemetry-") as tmp:
        folder = Path(tmp)
        repositories = build(source, folder / "repos", model)
        rates: dict[str, list[float]] = {name: [] for name in CONFIGS}
        for _ in range(rounds):
            for name, repository in repositories.items():
                rates[name].append(measure_once(repository, model, [("", 1.0)], concurrency, seconds, folder, WARMUP_S))
    report = summarise(rates, model=model, seconds=seconds, concurrency=concurrency, rounds=rounds)
    medians = report["median_req_per_s"]
    report["ratio_on_to_off"] = round(medians["on"] / medians["off"], 3)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.telemetry_bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="fraud")
    parser.add_argument("--source", type=Path, default=Path("models"), help="repository holding the model")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repositories-only", action="store_true", help="only write the two repositories to --out")
    parser.add_argument("--out", type=Path, default=Path("build/telemetry-bench"))
    args = parser.parse_args(argv)
    try:
        if args.repositories_only:
            for name, root in build(args.source, args.out, args.model).items():
                print(f"{name}: {root}")
            return 0
        result = run(args.model, args.source, args.rounds, args.seconds, args.concurrency)
    except (LoadTestError, OSError) as error:
        print(f"loadtest.telemetry_bench: error: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
