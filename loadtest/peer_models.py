"""The three models of the Triton comparison (issue 12), generated rather than committed:
`python -m loadtest.peer_models [--out DIR]`.

- `tiny`: y = x + 1 on 16 floats: nearly no compute, so the request path is everything.
- `mlp`: 256 -> 1024 -> 1024 -> 10 with ReLU (about 5 MB of weights): a small tabular/ranking model.
- `heavy`: 512 -> 4096 -> 4096 -> 512 (about 80 MB): compute-bound, where the request path hardly matters.

Each has a dynamic batch dimension and `max_batch_size = 32` (Triton's peer uses the same maximum), one instance.
"""

from __future__ import annotations

import argparse
import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import NodeProto, TensorProto, helper, numpy_helper

MAX_BATCH = 32
MODELS = {"tiny": (16,), "mlp": (256, 1024, 1024, 10), "heavy": (512, 4096, 4096, 512)}


def _serialized(
    graph_nodes: list[NodeProto], inputs: int, outputs: int, initializers: list[TensorProto], name: str
) -> bytes:
    graph = helper.make_graph(
        graph_nodes,
        name,
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", outputs])],
        initializer=initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="oip-bench")
    model.ir_version = 9
    return bytes(model.SerializeToString())


def tiny_bytes() -> bytes:
    one = numpy_helper.from_array(np.ones(16, dtype=np.float32), "one")
    return _serialized([helper.make_node("Add", ["x", "one"], ["y"])], 16, 16, [one], "tiny")


def mlp_bytes(sizes: Sequence[int], seed: int = 0) -> bytes:
    """Gemm + ReLU layers of `sizes` (the last layer without ReLU): x [batch, sizes[0]] -> y [batch, sizes[-1]]."""
    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
    layers = list(itertools.pairwise(sizes))
    for index, (fan_in, fan_out) in enumerate(layers):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        weights += [
            numpy_helper.from_array(w, f"w{index}"),
            numpy_helper.from_array(np.zeros(fan_out, np.float32), f"b{index}"),
        ]
        last = index == len(layers) - 1
        linear = "y" if last else f"l{index}"
        nodes.append(helper.make_node("Gemm", [current, f"w{index}", f"b{index}"], [linear]))
        if not last:
            nodes.append(helper.make_node("Relu", [linear], [f"h{index}"]))
            current = f"h{index}"
    return _serialized(nodes, sizes[0], sizes[-1], weights, "mlp")


def build(out: Path) -> list[Path]:
    """Write tiny/, mlp/ and heavy/ under `out`; returns the model files."""
    files = []
    for name, sizes in MODELS.items():
        data = tiny_bytes() if name == "tiny" else mlp_bytes(sizes)
        (out / name / "1").mkdir(parents=True, exist_ok=True)
        (out / name / "config.toml").write_text(f"max_batch_size = {MAX_BATCH}\n")
        path = out / name / "1" / "model.onnx"
        path.write_bytes(data)
        files.append(path)
    return files


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.peer_models", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("build/peer-models"), help="repository to write")
    args = parser.parse_args(argv)
    for path in build(args.out):
        print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
