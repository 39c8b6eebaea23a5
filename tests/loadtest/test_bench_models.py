"""The generated benchmark MLP has the signature the benchmarks rely on, and both configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from loadtest.bench_models import MAX_BATCH, OUTPUTS, WIDTH, build, mlp_bytes
from server.model_config import load_model_config


def test_mlp_signature_and_batching(tmp_path: Path) -> None:
    session = ort.InferenceSession(mlp_bytes(), providers=["CPUExecutionProvider"])
    (x,) = session.get_inputs()
    (y,) = session.get_outputs()
    assert (x.name, x.type, x.shape) == ("x", "tensor(float)", ["batch", WIDTH])
    assert (y.name, y.shape) == ("y", ["batch", OUTPUTS])
    out = session.run(None, {"x": np.ones((3, WIDTH), np.float32)})[0]
    assert out.shape == (3, OUTPUTS) and np.isfinite(out).all()
    assert mlp_bytes() == mlp_bytes()  # deterministic
    files = build(tmp_path)
    assert [f.parent.parent.name for f in files] == ["mlp", "mlp_nobatch"]
    assert load_model_config(tmp_path / "mlp").max_batch_size == MAX_BATCH
    assert load_model_config(tmp_path / "mlp").batching.enabled
    assert not load_model_config(tmp_path / "mlp_nobatch").batching.enabled
