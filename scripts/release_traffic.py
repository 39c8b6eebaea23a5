"""Traffic for the "Releasing a new version" runbook: which version answers unversioned and sticky callers.

    python scripts/release_traffic.py [--address localhost:8001] [--model fraud] [--requests 2000]

Sends `--requests` unversioned requests with random features and counts the version that served each
(`infer_result`), then 20 requests for each of three callers (`user_id` alice, bob, olivia) and prints the
versions each one saw: one per caller while the model has a sticky key.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np

from clients import InferenceClient

CALLERS = ("alice", "bob", "olivia")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", default="localhost:8001")
    parser.add_argument("--model", default="fraud")
    parser.add_argument("--input", default="features", help="the model's input name [features]")
    parser.add_argument("--width", type=int, default=12, help="features per row [12]")
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)

    def row() -> dict[str, np.ndarray]:
        return {args.input: rng.normal(size=(1, args.width)).astype(np.float32)}

    with InferenceClient(args.address) as client:
        served = Counter(client.infer_result(args.model, row()).model_version for _ in range(args.requests))
        print("unversioned:", dict(sorted(served.items())))
        for user in CALLERS:
            inputs = row()
            versions = {
                client.infer_result(args.model, inputs, parameters={"user_id": user}).model_version for _ in range(20)
            }
            print(f"{user} -> version {', '.join(sorted(versions))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
