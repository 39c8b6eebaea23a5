"""Admission of requests to a model version: validation once per request layout, then what batching needs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy.typing as npt

from server.batching.pending import merge_key
from server.errors import InvalidInputError
from server.types import InferRequest, ModelSignature, batch_size_of
from server.validation import validate_request


@dataclass(frozen=True, slots=True)
class Admission:
    """What an accepted request layout means for the batcher."""

    output_names: tuple[str, ...]
    """The outputs to compute, in response order."""
    rows: int
    """Rows the request adds to a merged batch (1 for models without a batch dimension)."""
    merge_key: tuple[Any, ...]
    """Requests with equal keys can share one execution."""


class RequestValidator:
    """Validates requests for one model version, remembering the layouts it has accepted.

    A layout is everything validation looks at: input names, dtypes and shapes, and the
    requested outputs. Clients send the same few layouts again and again, so after the
    first request of a layout the full check is one dictionary lookup. Rejected layouts
    are never remembered, and the memory is bounded.
    """

    def __init__(self, signature: ModelSignature, label: str, max_layouts: int = 1024) -> None:
        self._signature = signature
        self._label = label
        self._max_layouts = max_layouts
        self._accepted: dict[tuple[Any, ...], Admission] = {}
        self._text_inputs = tuple(spec.name for spec in signature.inputs if spec.datatype == "BYTES")
        """ONNX string inputs: their data, not only their layout, can be invalid (bytes that are not UTF-8)."""

    def admit(self, request: InferRequest) -> Admission:
        """The request's Admission, or InvalidInputError saying what does not fit the signature."""
        layout = (
            tuple([(name, array.dtype, array.shape) for name, array in request.inputs.items()]),
            request.requested_outputs,
        )
        admission = self._accepted.get(layout)
        if admission is None:
            output_names = validate_request(request, self._signature, self._label)
            batched = self._signature.max_batch_size > 0
            rows = batch_size_of(request.inputs) if batched else 1
            admission = Admission(output_names, rows, merge_key(request.inputs, output_names))
            if len(self._accepted) < self._max_layouts:
                self._accepted[layout] = admission
        if self._text_inputs:
            # Per request, not per layout: caught here, a bad element fails its own request only,
            # never the batch it would have joined. Models without string inputs skip it entirely.
            check_text(request.inputs, self._text_inputs, self._label)
        return admission


def check_text(inputs: Mapping[str, npt.NDArray[Any]], names: tuple[str, ...], label: str) -> None:
    """InvalidInputError unless every element of the named BYTES inputs is UTF-8 (ONNX string tensors hold text)."""
    for name in names:
        for index, item in enumerate(inputs[name].reshape(-1).tolist()):
            try:
                if isinstance(item, bytes):
                    item.decode("utf-8")
            except UnicodeDecodeError as error:
                raise InvalidInputError(
                    f"input '{name}' of model {label} has an element that is not UTF-8 (element {index}, byte"
                    f" {error.start}); ONNX string tensors hold text"
                ) from None
