"""Tiny ONNX models built in code, for tests that need a specific signature or behaviour."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

OPSET = 17

#: Protocol datatype -> ONNX element type.
ONNX_TYPES = {
    "BOOL": TensorProto.BOOL,
    "UINT8": TensorProto.UINT8,
    "UINT16": TensorProto.UINT16,
    "UINT32": TensorProto.UINT32,
    "UINT64": TensorProto.UINT64,
    "INT8": TensorProto.INT8,
    "INT16": TensorProto.INT16,
    "INT32": TensorProto.INT32,
    "INT64": TensorProto.INT64,
    "FP16": TensorProto.FLOAT16,
    "FP32": TensorProto.FLOAT,
    "FP64": TensorProto.DOUBLE,
    "BYTES": TensorProto.STRING,
}

Dim = int | str


def _model(nodes: list, inputs: list, outputs: list, initializers: Sequence = ()) -> bytes:
    graph = helper.make_graph(nodes, "test", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 9
    return model.SerializeToString()


def identity(datatype: str, shape: Sequence[Dim] = ("batch", 3)) -> bytes:
    """INPUT0 -> OUTPUT0 unchanged, of one datatype."""
    element = ONNX_TYPES[datatype]
    return _model(
        [helper.make_node("Identity", ["INPUT0"], ["OUTPUT0"])],
        [helper.make_tensor_value_info("INPUT0", element, list(shape))],
        [helper.make_tensor_value_info("OUTPUT0", element, list(shape))],
    )


def add_sub(width: int = 16) -> bytes:
    """Like Triton's `simple`: OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 (INT32)."""
    shape: list[Dim] = ["batch", width]
    tensor = helper.make_tensor_value_info
    return _model(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"]),
        ],
        [tensor("INPUT0", TensorProto.INT32, shape), tensor("INPUT1", TensorProto.INT32, shape)],
        [tensor("OUTPUT0", TensorProto.INT32, shape), tensor("OUTPUT1", TensorProto.INT32, shape)],
    )


def fixed_shape() -> bytes:
    """A model without a batch dimension: x FP32 [2, 3] -> y = 2x."""
    two = numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")
    return _model(
        [helper.make_node("Mul", ["x", "two"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        [two],
    )


def reshape_by_five() -> bytes:
    """x FP32 [batch, n] reshaped to [-1, 5]: fails inside onnxruntime unless batch*n % 5 == 0."""
    shape = numpy_helper.from_array(np.array([-1, 5], dtype=np.int64), "shape")
    return _model(
        [helper.make_node("Reshape", ["x", "shape"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 5])],
        [shape],
    )


def slow_matmul() -> bytes:
    """x FP32 [1, n] -> sum((x^T x) @ (x^T x)): O(n^3) work, so n tunes how long a request takes."""
    return _model(
        [
            helper.make_node("Transpose", ["x"], ["xt"]),
            helper.make_node("MatMul", ["xt", "x"], ["outer"]),
            helper.make_node("MatMul", ["outer", "outer"], ["square"]),
            helper.make_node("ReduceSum", ["square"], ["y"], keepdims=1),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1])],
    )


def write_model(root: Path, name: str, model: bytes, versions: Sequence[int] = (1,), config: str | None = None) -> Path:
    """Put `model` into root/name/<v>/model.onnx for each version, with an optional config.toml."""
    model_dir = root / name
    for version in versions:
        (model_dir / str(version)).mkdir(parents=True, exist_ok=True)
        (model_dir / str(version) / "model.onnx").write_bytes(model)
    if config is not None:
        (model_dir / "config.toml").write_text(config)
    return model_dir


def slow_rows() -> bytes:
    """x FP32 [batch, n] -> y [batch, 1] = |x|^2 (sum x)^2 per row, via an O(n^3) matrix product per row.

    Batchable, and n dials the cost: n = 4 is instant, n ~ 1000 keeps an instance busy for a while.
    """
    axes_col = numpy_helper.from_array(np.array([2], dtype=np.int64), "axes_col")
    axes_row = numpy_helper.from_array(np.array([1], dtype=np.int64), "axes_row")
    reduce_axes = numpy_helper.from_array(np.array([1, 2], dtype=np.int64), "reduce_axes")
    return _model(
        [
            helper.make_node("Unsqueeze", ["x", "axes_col"], ["col"]),
            helper.make_node("Unsqueeze", ["x", "axes_row"], ["row"]),
            helper.make_node("MatMul", ["col", "row"], ["outer"]),
            helper.make_node("MatMul", ["outer", "outer"], ["square"]),
            helper.make_node("ReduceSum", ["square", "reduce_axes"], ["y"], keepdims=0),
            helper.make_node("Unsqueeze", ["y", "axes_row"], ["out"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 1])],
        [axes_col, axes_row, reduce_axes],
    )


def scaled(factor: float) -> bytes:
    """x FP32 [batch, n] -> y = factor * x: versions that answer recognisably differently."""
    scale = numpy_helper.from_array(np.array(factor, dtype=np.float32), "scale")
    return _model(
        [helper.make_node("Mul", ["x", "scale"], ["y"])],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "n"])],
        [scale],
    )


def write_versions(root: Path, name: str, models: dict[int, bytes], config: str | None = None) -> Path:
    """A model whose versions are different graphs: root/name/<v>/model.onnx for each entry."""
    for version, model in models.items():
        write_model(root, name, model, versions=(version,))
    if config is not None:
        (root / name / "config.toml").write_text(config)
    return root / name


def scorer(classes: str = "negative,positive", flipped: bool = False) -> bytes:
    """x FP32 [batch, 1] in [0, 1] -> score = x [batch, 1], probabilities = [1 - x, x] [batch, 2] and
    label = argmax INT64 [batch] (ties go to class 0): every output's value is known from the input.
    The ONNX metadata names the classes, as an exported classifier's would. `flipped` scores 1 - x instead:
    a version whose classes are swapped."""
    one = numpy_helper.from_array(np.array(1.0, dtype=np.float32), "one")
    first = (
        helper.make_node("Sub", ["one", "x"], ["score"]) if flipped else helper.make_node("Identity", ["x"], ["score"])
    )
    graph = helper.make_graph(
        [
            first,
            helper.make_node("Sub", ["one", "score"], ["complement"]),
            helper.make_node("Concat", ["complement", "score"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
        ],
        "scorer",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [
            helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[one],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="tests")
    model.ir_version = 9
    helper.set_model_props(model, {"classes": classes})
    return model.SerializeToString()


def lookup(table: Sequence[float] = (0.5, 1.5, 2.5, 3.5)) -> bytes:
    """x INT64 [batch, 1] indexes a table: y FP32 [batch, 1] = table[x]. An index outside the table fails
    inside onnxruntime, for the whole execution: one request's data that no signature check can catch."""
    values = numpy_helper.from_array(np.array(table, dtype=np.float32), "table")
    return _model(
        [helper.make_node("Gather", ["table", "x"], ["y"], axis=0)],
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        [values],
    )


def batch_pooled() -> bytes:
    """x FP32 [batch, n] -> outputs that pool over the batch, so merging requests would change them:
    centered = x - mean(x over rows), declared ["rows", n] (a name that is not the inputs' batch dimension),
    and total = [sum(x)], declared [1]."""
    shape = numpy_helper.from_array(np.array([1], dtype=np.int64), "one_element")
    return _model(
        [
            helper.make_node("ReduceMean", ["x"], ["mean"], axes=[0], keepdims=1),
            helper.make_node("Sub", ["x", "mean"], ["centered"]),
            helper.make_node("ReduceSum", ["x"], ["sum"], keepdims=1),
            helper.make_node("Reshape", ["sum", "one_element"], ["total"]),
        ],
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "n"])],
        [
            helper.make_tensor_value_info("centered", TensorProto.FLOAT, ["rows", "n"]),
            helper.make_tensor_value_info("total", TensorProto.FLOAT, [1]),
        ],
        [shape],
    )
