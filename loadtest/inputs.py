"""Request inputs: generated from ModelMetadata, or loaded from .npy/.npz/.json files."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from loadtest.errors import LoadTestError
from oip.codec import array_to_raw, datatype_for, dtype_for
from oip.v1 import grpc_service_pb2 as pb


def parse_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    """`--shape name:1,256` (perf_analyzer style: without the batch dimension) -> {name: (1, 256)}."""
    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition(":")
        try:
            shape = tuple(int(dim) for dim in dims.split(",") if dim.strip())
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(dim < 0 for dim in shape):
            raise LoadTestError(f"--shape {item!r}: expected NAME:D1,D2,... with non-negative integers")
        shapes[name] = shape
    return shapes


def _random(datatype: str, shape: tuple[int, ...], rng: np.random.Generator) -> npt.NDArray[Any]:
    if datatype == "BYTES":
        flat = np.empty(int(np.prod(shape)), dtype=np.object_)
        flat[:] = [rng.bytes(8).hex().encode() for _ in range(flat.size)]
        return flat.reshape(shape)
    if datatype == "BOOL":
        return rng.random(shape) < 0.5
    dtype = dtype_for(datatype)
    if dtype.kind in "iu":
        return rng.integers(0, 100, size=shape).astype(dtype)
    return rng.standard_normal(shape).astype(dtype)


def generate_inputs(
    metadata: pb.ModelMetadataResponse,
    batch_size: int,
    batched: bool,
    shapes: Mapping[str, tuple[int, ...]],
    seed: int = 0,
) -> dict[str, npt.NDArray[Any]]:
    """Random tensors of the right datatype and shape for every model input."""
    rng = np.random.default_rng(seed)
    unknown = set(shapes) - {tensor.name for tensor in metadata.inputs}
    if unknown:
        raise LoadTestError(
            f"--shape names unknown inputs {sorted(unknown)}; model inputs: {[t.name for t in metadata.inputs]}"
        )
    inputs = {}
    for tensor in metadata.inputs:
        dims = list(tensor.shape[1:] if batched else tensor.shape)
        if tensor.name in shapes:
            override = shapes[tensor.name]
            if len(override) != len(dims) or any(d not in (-1, o) for d, o in zip(dims, override, strict=True)):
                raise LoadTestError(
                    f"--shape {tensor.name}:{','.join(map(str, override))} does not fit the model shape {dims}"
                )
            dims = list(override)
        if any(dim < 0 for dim in dims):
            raise LoadTestError(
                f"input '{tensor.name}' has variable dimensions {dims}; give them with --shape {tensor.name}:D1,D2,..."
            )
        shape = (batch_size, *dims) if batched else tuple(dims)
        try:
            inputs[tensor.name] = _random(tensor.datatype, shape, rng)
        except ValueError as error:
            raise LoadTestError(f"input '{tensor.name}': {error}") from None
    return inputs


def load_input_file(path: Path) -> dict[str, npt.NDArray[Any]]:
    """Inputs from `.npz` (one array per input), `.npy` (the only input, named by the caller) or `.json`."""
    if not path.is_file():
        raise LoadTestError(f"input file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                return {name: archive[name] for name in archive.files}
        if path.suffix == ".json":
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise LoadTestError(f"{path}: expected an object mapping input names to {{'datatype', 'data'}}")
            return {name: _json_tensor(name, spec) for name, spec in raw.items()}
        if path.suffix == ".npy":
            return {"": np.load(path, allow_pickle=False)}
    except (OSError, ValueError) as error:
        raise LoadTestError(f"cannot read {path}: {error}") from None
    raise LoadTestError(f"{path}: input files must be .npz, .npy or .json")


def _json_tensor(name: str, spec: Any) -> npt.NDArray[Any]:
    if not isinstance(spec, dict) or "data" not in spec or "datatype" not in spec:
        raise LoadTestError(f"input '{name}' in the JSON file needs 'datatype' and 'data' (nested lists)")
    if spec["datatype"] == "BYTES":
        array = np.array(spec["data"], dtype=np.object_)
        return np.vectorize(lambda item: str(item).encode(), otypes=[np.object_])(array)  # type: ignore[no-any-return]
    return np.array(spec["data"], dtype=dtype_for(spec["datatype"]))


def with_parameters(payload: bytes, parameters: Mapping[str, str]) -> bytes:
    """A serialized ModelInferRequest with string `parameters` added (e.g. a sticky routing key)."""
    if not parameters:
        return payload
    request = pb.ModelInferRequest.FromString(payload)
    for name, value in parameters.items():
        request.parameters[name].string_param = value
    return request.SerializeToString()


def encode_request(model: str, version: str, inputs: Mapping[str, npt.NDArray[Any]]) -> bytes:
    """One serialized ModelInferRequest with raw contents, sent unchanged by every engine."""
    request = pb.ModelInferRequest(model_name=model, model_version=version)
    for name, array in inputs.items():
        request.inputs.add(name=name, datatype=datatype_for(array.dtype), shape=array.shape)
        request.raw_input_contents.append(array_to_raw(array))
    return request.SerializeToString()
