"""P5: resident memory one loaded model version costs, `python -m loadtest.memory --model-repository DIR --model NAME`.

Starts `python -m server` twice on loopback: once on an empty repository, once on a repository
holding only the model (its highest version), and compares VmRSS after each reports ready.
The budget is 1.5 x the model file size + 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from loadtest.baselines import model_file
from loadtest.errors import LoadTestError
from loadtest.local_server import free_port, stop, wait_until_ready
from server.model_config import load_model_config

_READY_TIMEOUT_S = 120.0


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise LoadTestError(f"no VmRSS for process {pid}")


def _ready_rss(repository: Path, extra: Sequence[str]) -> float:
    """Start a server on `repository`, wait until ready, settle, return its RSS in MB."""
    http_port = free_port()
    args = [sys.executable, "-m", "server", "--model-repository", str(repository), "--host", "127.0.0.1",
            "--grpc-port", "0", "--metrics-host", "127.0.0.1", "--metrics-port", str(http_port),
            "--log-level", "WARNING", *extra]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until_ready(http_port, process, _READY_TIMEOUT_S)
        time.sleep(1.0)  # let allocator and loader threads settle
        return _rss_mb(process.pid)
    finally:
        stop(process, 30)


def _single_version_config(model_dir: Path) -> str:
    """The model's batching and instances, without what needs its other versions ([routing] names them): a copied
    config with weights for absent versions failed to load, and the "loaded" server measured no model at all."""
    config = load_model_config(model_dir)
    lines = [] if config.max_batch_size is None else [f"max_batch_size = {config.max_batch_size}"]
    lines += ["[instances]", f"count = {config.instances.count}"]
    return "\n".join(lines) + "\n"


def measure(repository: Path, model: str, extra: Sequence[str] = ()) -> dict[str, Any]:
    source = model_file(repository, model, "")
    file_bytes = os.path.getsize(source)
    file_mb = file_bytes / 1e6
    with tempfile.TemporaryDirectory(prefix="loadtest-memory-") as tmp:
        empty = Path(tmp) / "empty"
        single = Path(tmp) / "single"
        empty.mkdir()
        (single / model / "1").mkdir(parents=True)
        shutil.copy(source, single / model / "1" / "model.onnx")
        (single / model / "config.toml").write_text(_single_version_config(repository / model))
        # An empty repository is never ready under strict readiness (the server's default): report ready anyway.
        base = _ready_rss(empty, [*extra, "--lenient-readiness"])
        loaded = _ready_rss(single, extra)
    budget = 1.5 * file_mb + 50
    delta = loaded - base
    return {
        "model": model,
        "file_bytes": file_bytes,
        "file_mb": round(file_mb, 1),
        "rss_empty_mb": round(base, 1),
        "rss_loaded_mb": round(loaded, 1),
        "rss_per_version_mb": round(delta, 1),
        "budget_mb": round(budget, 1),
        "ratio_to_file": round(delta / file_mb, 2) if file_mb else None,
        "within_budget": delta <= budget,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.memory", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", type=Path, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--server-arg", action="append", default=[], help="extra flag for the server, repeatable")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(measure(args.model_repository, args.model, args.server_arg), indent=2))
    except LoadTestError as error:
        print(f"loadtest.memory: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
