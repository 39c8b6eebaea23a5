"""Benchmark-only models, generated rather than committed: `python -m loadtest.bench_models [--out DIR]`.

`mlp`: a 2048-wide, 4-layer MLP with ~50 MB of FP32 weights. At batch 1 every request reads all
the weights, so it is memory-bound; batching amortises the weight reads, which is what the
P2 benchmark (dynamic batching vs in-process ONNX Runtime at max batch) measures.
`mlp_nobatch` serves the same file with batching disabled, the "batching off" reference.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

WIDTH = 2048
LAYERS = 3
OUTPUTS = 512
MAX_BATCH = 32


def mlp_bytes(seed: int = 0) -> bytes:
    """The serialized MLP: x FP32 [batch, 2048] -> y FP32 [batch, 512]."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
    sizes = [WIDTH] * (LAYERS + 1) + [OUTPUTS]
    for index, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        weights += [numpy_helper.from_array(w, f"w{index}"), numpy_helper.from_array(b, f"b{index}")]
        output = "y" if index == len(sizes) - 2 else f"h{index}"
        linear = f"l{index}" if output != "y" else "y"
        nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [linear]))
        if output != "y":
            nodes.append(helper.make_node("Relu", [linear], [output]))
        current = output
    graph = helper.make_graph(
        nodes,
        "bench_mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", WIDTH])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", OUTPUTS])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oip-bench")
    model.ir_version = 9
    return bytes(model.SerializeToString())


def build(out: Path) -> list[Path]:
    """Write mlp/ and mlp_nobatch/ (same weights) under `out`; returns the model files."""
    data = mlp_bytes()
    configs = {
        "mlp": f"max_batch_size = {MAX_BATCH}\n",
        "mlp_nobatch": f"max_batch_size = {MAX_BATCH}\n\n[batching]\nenabled = false\n",
    }
    files = []
    for name, config in configs.items():
        (out / name / "1").mkdir(parents=True, exist_ok=True)
        (out / name / "config.toml").write_text(config)
        path = out / name / "1" / "model.onnx"
        path.write_bytes(data)
        files.append(path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.bench_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/bench-models"), help="repository to write")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
