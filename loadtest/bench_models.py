"""Benchmark-only models, generated rather than committed: `python -m loadtest.bench_models [--out DIR]`.

`mlp`: a 2048-wide, 4-layer MLP with ~50 MB of FP32 weights. At batch 1 every request reads all
the weights, so it is memory-bound; batching amortises the weight reads, which is what the
P2 benchmark (dynamic batching vs in-process ONNX Runtime at max batch) measures.
`mlp_nobatch` serves the same file with batching disabled, the "batching off" reference.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

WIDTH = 2048
LAYERS = 3
OUTPUTS = 512
MAX_BATCH = 32


def mlp_model(sizes: Sequence[int], seed: int = 0, name: str = "bench_mlp") -> bytes:
    """A serialized MLP of Gemm + ReLU layers through `sizes` (no ReLU after the last):
    x FP32 [batch, sizes[0]] -> y FP32 [batch, sizes[-1]]."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
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
    return serialized_model(nodes, sizes[0], sizes[-1], weights, name)


def serialized_model(nodes: list[NodeProto], inputs: int, outputs: int, weights: list[TensorProto], name: str) -> bytes:
    """x FP32 [batch, inputs] -> y FP32 [batch, outputs] through `nodes`, opset 17."""
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oip-bench")
    model.ir_version = 9
    return bytes(model.SerializeToString())


def mlp_bytes(seed: int = 0) -> bytes:
    """The serialized MLP: x FP32 [batch, 2048] -> y FP32 [batch, 512]."""
    return mlp_model([WIDTH] * (LAYERS + 1) + [OUTPUTS], seed)


def write_models(out: Path, models: Mapping[str, tuple[bytes, str]]) -> list[Path]:
    """Each model as `out/<name>/1/model.onnx` with its config.toml text; returns the model files."""
    files = []
    for name, (data, config) in models.items():
        (out / name / "1").mkdir(parents=True, exist_ok=True)
        (out / name / "config.toml").write_text(config)
        path = out / name / "1" / "model.onnx"
        path.write_bytes(data)
        files.append(path)
    return files


def cli(
    prog: str, description: str, default_out: Path, build: Callable[[Path], list[Path]], argv: Sequence[str] | None
) -> int:
    """The `--out DIR` command line of a model builder: build, then list what it wrote."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", type=Path, default=default_out, help="repository to write")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


def build(out: Path) -> list[Path]:
    """Write mlp/ and mlp_nobatch/ (same weights) under `out`; returns the model files."""
    data = mlp_bytes()
    return write_models(
        out,
        {
            "mlp": (data, f"max_batch_size = {MAX_BATCH}\n"),
            "mlp_nobatch": (data, f"max_batch_size = {MAX_BATCH}\n\n[batching]\nenabled = false\n"),
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli("python -m loadtest.bench_models", __doc__.split("\n\n")[0], Path("build/bench-models"), build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
