"""Build the bundled example model repository from synthetic data (deterministic, no downloads).

Each version gets its reference profile (reference.json, for the server's drift scores), counted by the
server's own code on the version's held-out data.

Usage: python models/build.py [--out DIR]    (default: the directory containing this script)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# models/ is not a package; make the private helpers importable however this file is loaded (script or importlib).
_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from _builder import readme  # noqa: E402
from _builder.common import BuiltModel  # noqa: E402
from _builder.fraud import build_fraud  # noqa: E402
from _builder.shapes import build_shapes  # noqa: E402

from server.predictions.profile import PROFILE_FILE, write_profile  # noqa: E402
from server.profile import profile_model  # noqa: E402

#: Where a bundled profile's data came from; no timestamp, so that rebuilds are byte-identical.
PROFILE_SOURCE = {
    "data_file": "held-out split of the generated data (models/_builder)",
    "created": "reproducible build",
}

# Exact text of each model's config.toml (the server's config schema).
CONFIGS: dict[str, str] = {
    "fraud": (
        "# Fraud scoring on 12 raw transaction features. Two versions are served: the logistic\n"
        "# regression (v1) is stable, the MLP (v2) is a 10 % canary, judged and rolled back by the server.\n"
        "max_batch_size = 64\n"
        "\n"
        "[versions]\n"
        'policy = "all"\n'
        "\n"
        "[routing]\n"
        'weights = { "1" = 90, "2" = 10 }\n'
        "# Callers that send a user_id (request parameter or gRPC metadata) stay on one version.\n"
        'sticky_key = "user_id"\n'
        "\n"
        "[routing.judge]\n"
        "enabled = true\n"
    ),
    "shapes": "# 16x16 grayscale shape classifier.\nmax_batch_size = 32\n",
}


def _write(path: Path, data: bytes) -> None:
    """Bytes, not text, so no platform newline translation can break byte-identical rebuilds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def model_path(out_dir: Path, key: str) -> Path:
    """``fraud/2`` -> ``out_dir/fraud/2/model.onnx``."""
    return out_dir / key / "model.onnx"


def build_repository(out_dir: Path) -> dict[str, float]:
    """Write every model, config and the README under ``out_dir``; return held-out accuracy per ``name/version``."""
    built: list[BuiltModel] = [*build_fraud(), *build_shapes()]
    for model in built:
        _write(model_path(out_dir, model.key), model.onnx_bytes)
    for name, text in CONFIGS.items():
        _write(out_dir / name / "config.toml", text.encode())
    for model in built:
        path = model_path(out_dir, model.key)
        profile = profile_model(path, path.parent.parent, model.held_out, PROFILE_SOURCE)
        write_profile(path.parent / PROFILE_FILE, profile)
    accuracies = {model.key: model.accuracy for model in built}
    _write(out_dir / "README.md", readme.render(accuracies).encode())
    return accuracies


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=_HERE, help="output repository directory (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    out_dir: Path = _parse_args(argv).out
    for key, accuracy in build_repository(out_dir).items():
        path = model_path(out_dir, key)
        print(f"{key:<9} {path}  {path.stat().st_size:>7,} bytes  held-out accuracy {accuracy:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
