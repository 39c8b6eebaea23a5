"""Helpers shared by every example model: array aliases, ONNX assembly and held-out evaluation."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

Floats = npt.NDArray[np.float32]
Ints = npt.NDArray[np.int64]

OPSET = 17
IR_VERSION = 9
PRODUCER = "oip-example-builder"
BATCH = "batch"


@dataclass(frozen=True)
class Split:
    """Train / held-out partition of a labelled dataset."""

    x_train: Floats
    y_train: Ints
    x_test: Floats
    y_test: Ints


@dataclass(frozen=True)
class BuiltModel:
    """One serialized model version plus its held-out accuracy and data."""

    name: str
    version: int
    onnx_bytes: bytes
    accuracy: float
    held_out: dict[str, Floats] = field(default_factory=dict)
    """The held-out inputs by input name: the version's reference profile is built from them."""

    @property
    def key(self) -> str:
        return f"{self.name}/{self.version}"


def split(x: Floats, y: Ints, n_test: int) -> Split:
    """Hold out the last ``n_test`` rows; generators already emit rows in random order."""
    return Split(x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:])


def const(name: str, array: npt.NDArray[Any]) -> TensorProto:
    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def float_input(name: str, dims: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [BATCH, *dims])


def classifier_head(
    logits: str, n_classes: int, probs: str, label: str
) -> tuple[list[onnx.NodeProto], list[onnx.ValueInfoProto]]:
    """Softmax probabilities plus an INT64 argmax label: the output contract of every example model."""
    nodes = [
        helper.make_node("Softmax", [logits], [probs], axis=1),
        helper.make_node("ArgMax", [probs], [label], axis=1, keepdims=0),
    ]
    outputs = [
        helper.make_tensor_value_info(probs, TensorProto.FLOAT, [BATCH, n_classes]),
        helper.make_tensor_value_info(label, TensorProto.INT64, [BATCH]),
    ]
    return nodes, outputs


def serialize(graph: onnx.GraphProto, doc: str, metadata: dict[str, str]) -> bytes:
    """Pin every header field (opset, IR version, producer, no timestamps) so rebuilds are byte-identical."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name=PRODUCER)
    model.ir_version = IR_VERSION
    model.doc_string = doc
    helper.set_model_props(model, metadata)
    onnx.checker.check_model(model, full_check=True)
    return model.SerializeToString()


def ort_accuracy(model: bytes, input_name: str, label_name: str, data: Split) -> float:
    """Score the serialized model itself, so the reported number is what the server will actually serve."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    (labels,) = session.run([label_name], {input_name: data.x_test})
    return float(np.mean(labels == data.y_test))
