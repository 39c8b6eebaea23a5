"""Reading a model's signature (names, datatypes, shapes) from an ONNX Runtime session."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from server.errors import ModelLoadError
from server.types import ModelSignature, TensorSpec

#: ONNX Runtime type strings -> protocol datatypes.
ORT_TO_DATATYPE = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}

#: Batch limit for models whose config does not say and whose first dimension is dynamic.
DEFAULT_MAX_BATCH_SIZE = 32


def _spec(node: Any, role: str) -> TensorSpec:
    datatype = ORT_TO_DATATYPE.get(node.type)
    if datatype is None:
        raise ModelLoadError(
            f"{role} '{node.name}' has type {node.type}; only numeric, bool and string tensors are supported"
            " (for sklearn-onnx classifiers, convert with zipmap disabled)"
        )
    shape = tuple(dim if isinstance(dim, int) and dim >= 0 else -1 for dim in (node.shape or []))
    return TensorSpec(name=node.name, datatype=datatype, shape=shape)


def _first_dim_dynamic(specs: Sequence[TensorSpec]) -> bool:
    return all(spec.shape and spec.shape[0] == -1 for spec in specs)


def _first_dim(node: Any) -> int | str | None:
    """The first dimension as the ONNX file states it: a dim_value, a dim_param name, or None (unknown)."""
    return node.shape[0] if node.shape else None


def merge_blocker(input_nodes: Sequence[Any], output_nodes: Sequence[Any]) -> str:
    """Why concatenating requests could break this model's outputs, or "" when it provably cannot.

    Splitting a merged batch's outputs is exact only when every output's first dimension is the
    inputs' batch dimension. The file proves that only by naming one symbolic dimension (dim_param)
    on every input and output; an unnamed (None) or fixed first dimension could be a reduction over
    the batch (a sum, a pooled row), so such a model is conservatively never merged.
    """
    batch_dims = {_first_dim(node) for node in input_nodes}
    batch = batch_dims.pop() if len(batch_dims) == 1 else None
    if not isinstance(batch, str) or not batch:
        found = ", ".join(f"'{node.name}': {_first_dim(node)!r}" for node in input_nodes)
        return f"the inputs do not share one named batch dimension ({found})"
    for node in output_nodes:
        if _first_dim(node) != batch:
            return (
                f"output '{node.name}' has first dimension {_first_dim(node)!r}, not the inputs' batch dimension"
                f" {batch!r}, so its rows cannot be split per request"
            )
    return ""


def signature_from_session(session: Any, configured_max_batch: int | None) -> ModelSignature:
    """The served signature: ONNX inputs/outputs plus the batch limit.

    A configured `max_batch_size > 0` requires a dynamic first dimension on every
    input; without a config, batching is on exactly when all inputs have one.
    Merging requests also needs every output to carry the inputs' batch dimension (`merge_blocker`).
    """
    input_nodes, output_nodes = session.get_inputs(), session.get_outputs()
    inputs = tuple(_spec(node, "input") for node in input_nodes)
    outputs = tuple(_spec(node, "output") for node in output_nodes)
    batchable = bool(inputs) and _first_dim_dynamic(inputs)
    if configured_max_batch is None:
        max_batch = DEFAULT_MAX_BATCH_SIZE if batchable else 0
    elif configured_max_batch > 0 and not batchable:
        fixed = [spec.name for spec in inputs if not spec.shape or spec.shape[0] != -1]
        raise ModelLoadError(
            f"max_batch_size = {configured_max_batch} but inputs {fixed} have no dynamic first dimension;"
            " set max_batch_size = 0 or export the model with a dynamic batch axis"
        )
    else:
        max_batch = configured_max_batch
    unmergeable = merge_blocker(input_nodes, output_nodes) if max_batch > 0 else ""
    return ModelSignature(
        inputs=inputs,
        outputs=outputs,
        max_batch_size=max_batch,
        unmergeable=unmergeable,
        max_batch_size_configured=configured_max_batch is not None,
    )
