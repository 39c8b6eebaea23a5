"""`python -m server.profile`: build a version's reference profile by running it on a sample of data.

    python -m server.profile --model-repository models --model fraud --version 2 --data holdout.npz

The profile (`<model>/<version>/reference.json`) is what the server's drift scores compare live
predictions with: it is counted by the same code, on the same buckets, as live traffic.
Data: `.npz` (arrays named after the model's inputs; a single unnamed array feeds a single input),
`.npy` (one array, for a model with one input) or `.parquet` (needs pyarrow; the columns of a model
with one 2-D input, in the order of its `features` metadata when present, else file order).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from server.errors import ModelLoadError
from server.model_config import load_model_config
from server.predictions.profile import PROFILE_FILE, ReferenceProfile, build_profile, data_sha256, write_profile
from server.predictions.watches import FEATURE_METADATA_KEY, names_from_metadata
from server.runtime.onnx_runner import load_onnx_model
from server.settings import RuntimeSettings
from server.types import ModelSignature
from server.versions.assembly import tensor_shape

#: Rows per session.run when the model takes batches (bounded memory on large samples).
CHUNK_ROWS = 4096


class ProfileInputError(ValueError):
    """Data that does not fit the model; the message says what was expected."""


def read_data(path: Path, signature: ModelSignature, metadata: Mapping[str, str]) -> dict[str, npt.NDArray[Any]]:
    """The model's inputs from a data file, converted to the input dtypes."""
    suffix = path.suffix.lower()
    names = [spec.name for spec in signature.inputs]
    if suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
        if len(names) == 1 and names[0] not in arrays and len(arrays) == 1:
            arrays = {names[0]: next(iter(arrays.values()))}
    elif suffix == ".npy":
        if len(names) != 1:
            raise ProfileInputError(f"a .npy file holds one array; the model has {len(names)} inputs {names}: use .npz")
        arrays = {names[0]: np.load(path, allow_pickle=False)}
    elif suffix == ".parquet":
        arrays = {names[0]: _read_parquet(path, names, metadata)}
    else:
        raise ProfileInputError(f"{path}: unsupported data file type {suffix!r}; expected .npz, .npy or .parquet")
    missing = [name for name in names if name not in arrays]
    if missing:
        raise ProfileInputError(f"{path} has no array for inputs {missing}; it has {sorted(arrays)}")
    converted = {}
    for spec in signature.inputs:
        array = arrays[spec.name]
        if spec.datatype != "BYTES":
            array = array.astype(spec.dtype, copy=False)
        converted[spec.name] = array
    rows = {array.shape[0] if array.ndim else 1 for array in converted.values()}
    if len(rows) != 1:
        raise ProfileInputError(f"the inputs have different numbers of rows: {sorted(rows)}")
    return converted


def _read_parquet(path: Path, names: Sequence[str], metadata: Mapping[str, str]) -> npt.NDArray[Any]:
    if len(names) != 1:
        raise ProfileInputError(f"a .parquet file feeds a model with one input; this one has {list(names)}: use .npz")
    try:
        # Optional dependency, imported only for .parquet files.
        import pyarrow.parquet as pq  # type: ignore[import-not-found, unused-ignore]  # noqa: PLC0415
    except ImportError:
        raise ProfileInputError(
            "reading .parquet needs pyarrow (pip install pyarrow); or save the data as .npz"
        ) from None
    table = pq.read_table(path)
    columns = list(names_from_metadata(metadata, (FEATURE_METADATA_KEY,))) or list(table.column_names)
    absent = [c for c in columns if c not in table.column_names]
    if absent:
        raise ProfileInputError(f"{path} lacks the feature columns {absent}")
    return np.stack([table.column(c).to_numpy() for c in columns], axis=1)


def profile_model(
    model_path: Path, model_dir: Path, inputs: Mapping[str, npt.NDArray[Any]], source: Mapping[str, str]
) -> ReferenceProfile:
    """Run the version at `model_path` on `inputs` and count its predictions as the server would."""
    config = load_model_config(model_dir)
    model = load_onnx_model(model_path, config, RuntimeSettings(intra_op_threads=1))
    session = model.sessions[0]
    rows = next(iter(inputs.values())).shape[0]
    step = CHUNK_ROWS if model.signature.max_batch_size > 0 else rows
    names = [spec.name for spec in model.signature.outputs]
    parts: list[list[npt.NDArray[Any]]] = [[] for _ in names]
    for start in range(0, rows, step):
        feeds = {name: array[start : start + step] for name, array in inputs.items()}
        for index, value in enumerate(session.run(names, feeds)):
            parts[index].append(np.asarray(value))
    outputs = {name: np.concatenate(chunks) for name, chunks in zip(names, parts, strict=True)}
    return build_profile(
        tuple(tensor_shape(spec) for spec in model.signature.inputs),
        tuple(tensor_shape(spec) for spec in model.signature.outputs),
        config.telemetry,
        dict(model.identity.metadata),
        inputs,
        outputs,
        {"model_sha256": model.identity.sha256, "data_sha256": data_sha256(inputs), **source},
    )


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m server.profile", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-repository", type=Path, required=True, help="model repository directory")
    parser.add_argument("--model", required=True, help="model name (a directory of the repository)")
    parser.add_argument("--version", type=int, required=True, help="version number (a directory of the model)")
    parser.add_argument("--data", type=Path, required=True, help="reference data: .npz, .npy or .parquet")
    parser.add_argument("--limit", type=int, default=0, help="use at most this many rows (0 = all)")
    parser.add_argument(
        "--output", type=Path, default=None, help=f"where to write (default <version dir>/{PROFILE_FILE})"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    model_dir = args.model_repository / args.model
    config = load_model_config(model_dir)
    model_path = model_dir / str(args.version) / config.model_filename
    try:
        model = load_onnx_model(model_path, config, RuntimeSettings(intra_op_threads=1))
        inputs = read_data(args.data, model.signature, dict(model.identity.metadata))
        if args.limit > 0:
            inputs = {name: array[: args.limit] for name, array in inputs.items()}
        profile = profile_model(model_path, model_dir, inputs, {"data_file": args.data.name})
    except (ModelLoadError, ProfileInputError, OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    output = args.output or model_path.parent / PROFILE_FILE
    write_profile(output, profile)
    watched = sorted({name for name, _ in profile.histograms} | set(profile.classes))
    print(f"wrote {output}: {profile.samples} samples, watched outputs {watched}, features {len(profile.features)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
