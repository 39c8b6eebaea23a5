"""Checks a decoded request against a model version's signature before it runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy.typing as npt

from oip.codec import datatype_for
from server.errors import InvalidInputError
from server.names import shown_names
from server.types import InferRequest, ModelSignature, TensorSpec


def _check_shape(label: str, spec: TensorSpec, shape: tuple[int, ...]) -> None:
    if len(shape) == len(spec.shape) and all(w in (-1, g) for g, w in zip(shape, spec.shape, strict=True)):
        return
    if len(shape) != len(spec.shape):
        raise InvalidInputError(
            f"input '{spec.name}' of model {label} has shape {list(shape)} but the model expects "
            f"{len(spec.shape)} dimensions {list(spec.shape)} (-1 = any size)"
        )
    for axis, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if want not in (-1, got):
            raise InvalidInputError(
                f"input '{spec.name}' of model {label} has shape {list(shape)} but the model expects "
                f"{list(spec.shape)} (dimension {axis} must be {want}, -1 = any size)"
            )


def _report_names(request: InferRequest, expected: frozenset[str], label: str) -> None:
    unknown = sorted(set(request.inputs) - expected)
    if unknown:
        raise InvalidInputError(
            f"model {label} has no input named {shown_names(unknown)}; expected inputs: {', '.join(sorted(expected))}"
        )
    missing = sorted(expected - set(request.inputs))
    raise InvalidInputError(f"model {label} needs input(s) {', '.join(repr(n) for n in missing)}, not sent")


def _check_batch(label: str, signature: ModelSignature, inputs: Mapping[str, npt.NDArray[Any]]) -> None:
    sizes = {name: int(array.shape[0]) for name, array in inputs.items()}
    distinct = set(sizes.values())
    if len(distinct) > 1:
        raise InvalidInputError(f"inputs of model {label} disagree on the batch size (first dimension): {sizes}")
    batch = distinct.pop() if distinct else 0
    if batch < 1:
        raise InvalidInputError(f"batch size of a request to model {label} must be at least 1, got {batch}")
    # Past a default limit (no max_batch_size in config.toml) the request runs alone rather than being refused:
    # the batcher gives a request larger than a batch an execution of its own.
    if batch > signature.max_batch_size and signature.max_batch_size_configured:
        raise InvalidInputError(
            f"batch size {batch} of a request to model {label} exceeds its max_batch_size {signature.max_batch_size}"
        )


def validate_request(request: InferRequest, signature: ModelSignature, label: str) -> tuple[str, ...]:
    """Raise InvalidInputError unless the request fits; return the output names to compute."""
    expected = signature.input_names
    if request.inputs.keys() != expected:
        _report_names(request, expected, label)
    for spec in signature.inputs:
        array = request.inputs[spec.name]
        if array.dtype != spec.dtype:
            datatype = datatype_for(array.dtype)
            raise InvalidInputError(
                f"input '{spec.name}' of model {label} has datatype {datatype} but the model expects {spec.datatype}"
            )
        _check_shape(label, spec, array.shape)
    if signature.max_batch_size > 0:
        _check_batch(label, signature, request.inputs)
    known_outputs = signature.output_names
    if not request.requested_outputs:
        return known_outputs
    unknown_outputs = [name for name in request.requested_outputs if name not in known_outputs]
    if unknown_outputs:
        raise InvalidInputError(
            f"model {label} has no output named {shown_names(unknown_outputs)}; outputs: {', '.join(known_outputs)}"
        )
    return tuple(dict.fromkeys(request.requested_outputs))
