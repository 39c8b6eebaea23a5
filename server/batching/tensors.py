"""Merging requests' tensors into one batch and splitting the outputs back, exactly."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from server.batching.pending import PendingRequest
from server.errors import InferenceFailedError


def merge_inputs(batch: Sequence[PendingRequest]) -> dict[str, npt.NDArray[Any]]:
    """Concatenate each input along the batch dimension (no copy for a batch of one)."""
    if len(batch) == 1:
        return batch[0].inputs
    names = batch[0].inputs.keys()
    return {name: np.concatenate([request.inputs[name] for request in batch], axis=0) for name in names}


def check_splittable(outputs: Mapping[str, npt.NDArray[Any]], total: int, label: str) -> None:
    """InferenceFailedError unless every output has one row per input row (`total` rows in the batch)."""
    for name, array in outputs.items():
        if array.ndim == 0 or array.shape[0] != total:
            got = array.shape[0] if array.ndim else "no batch dimension"
            raise InferenceFailedError(
                f"model {label} returned output '{name}' with first dimension {got} for a batch of {total} rows, "
                "so it cannot be split per request; set max_batch_size = 0 in its config.toml"
            )


def split_outputs(
    outputs: dict[str, npt.NDArray[Any]], batch: Sequence[PendingRequest], label: str
) -> list[dict[str, npt.NDArray[Any]]]:
    """Per-request views of the batch outputs; every output must have one row per input row."""
    if len(batch) == 1:
        return [outputs]
    check_splittable(outputs, sum(request.batch_size for request in batch), label)
    # Python ints: np.cumsum on a short list costs more than the whole split.
    offsets = itertools.accumulate((request.batch_size for request in batch), initial=0)
    return [{name: array[start:stop] for name, array in outputs.items()} for start, stop in itertools.pairwise(offsets)]
