"""The three models of the Triton comparison (issue 12), generated rather than committed:
`python -m loadtest.peer_models [--out DIR]`.

- `tiny`: y = x + 1 on 16 floats: nearly no compute, so the request path is everything.
- `mlp`: 256 -> 1024 -> 1024 -> 10 with ReLU (about 5 MB of weights): a small tabular/ranking model.
- `heavy`: 512 -> 4096 -> 4096 -> 512 (about 80 MB): compute-bound, where the request path hardly matters.

Each has a dynamic batch dimension and `max_batch_size = 32` (Triton's peer uses the same maximum), one instance.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import helper, numpy_helper

from loadtest.bench_models import cli, mlp_model, serialized_model, write_models

MAX_BATCH = 32
MODELS = {"tiny": (16,), "mlp": (256, 1024, 1024, 10), "heavy": (512, 4096, 4096, 512)}


def tiny_bytes() -> bytes:
    one = numpy_helper.from_array(np.ones(16, dtype=np.float32), "one")
    return serialized_model([helper.make_node("Add", ["x", "one"], ["y"])], 16, 16, [one], "tiny")


def build(out: Path) -> list[Path]:
    """Write tiny/, mlp/ and heavy/ under `out`; returns the model files."""
    config = f"max_batch_size = {MAX_BATCH}\n"
    return write_models(
        out,
        {
            name: (tiny_bytes() if name == "tiny" else mlp_model(sizes, name=name), config)
            for name, sizes in MODELS.items()
        },
    )


def main(argv: Sequence[str] | None = None) -> int:
    return cli("python -m loadtest.peer_models", __doc__.split("\n\n")[0], Path("build/peer-models"), build, argv)


if __name__ == "__main__":
    raise SystemExit(main())
