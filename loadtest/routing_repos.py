"""Two repositories for the routing benchmark: `python -m loadtest.routing_repos [--source models] [--out DIR]`.

Both hold `fraud` with versions 1 and 2 made of the *same* model file, so any difference in cost
is routing, not the model: `off/` has no [routing] (every request goes to the highest version),
`decide/` routes by a sticky request parameter (`user_id`) with weights 100/0, so every decision is
made but one batcher serves all, `decide-metadata/` reads the same key from gRPC metadata, and `on/`
splits 90/10 by weighted draw (its sticky parameter is configured but not sent).
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence
from pathlib import Path

#: The load sends the sticky key both as gRPC metadata and as a request parameter with every request, in every
#: configuration, so that decoding and transport cost the same everywhere.
HEADER = "user_id: u-17"
PARAMETERS = {"user_id": "u-17"}
_ROUTED = 'max_batch_size = 64\n\n[routing]\nweights = {weights}\nsticky_key = "{key}"\nsticky_from = "{source}"\n'


def _routed(weights: str, key: str, source: str) -> str:
    return _ROUTED.replace("{weights}", weights).replace("{key}", key).replace("{source}", source)


CONFIGS = {
    "off": "max_batch_size = 64\n",
    # the sticky parameter is read and hashed on every request; weights 100/0 keep one batcher, as with "off"
    "decide": _routed('{ "1" = 100, "2" = 0 }', "user_id", "parameter"),
    # the same key read from gRPC metadata instead (grpc.aio's invocation_metadata() is the extra cost)
    "decide-metadata": _routed('{ "1" = 100, "2" = 0 }', "user_id", "metadata"),
    # two weighted versions, 90/10 by weighted draw: the configured sticky parameter ("session") is not sent
    "on": _routed('{ "1" = 90, "2" = 10 }', "session", "parameter"),
}


def build(source: Path, out: Path, model: str = "fraud") -> dict[str, Path]:
    """Write out/<name> for each of CONFIGS; returns {name: repository}."""
    model_file = source / model / "1" / "model.onnx"
    if not model_file.is_file():
        raise FileNotFoundError(f"{model_file} is missing (run `make models`)")
    repositories = {}
    for name, config in CONFIGS.items():
        root = out / name
        for version in (1, 2):
            (root / model / str(version)).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(model_file, root / model / str(version) / "model.onnx")
        (root / model / "config.toml").write_text(config)
        repositories[name] = root
    return repositories


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.routing_repos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=Path("models"), help="repository to take the model from")
    parser.add_argument("--out", type=Path, default=Path("build/routing-bench"), help="where to write off/ and on/")
    args = parser.parse_args(argv)
    for name, root in build(args.source, args.out).items():
        print(f"{name}: {root}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
