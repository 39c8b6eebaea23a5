"""server.runtime.onnx_signature: which models may merge requests, read from real onnxruntime sessions."""

from __future__ import annotations

from typing import Any

import onnxruntime as ort
import pytest

from server.runtime.onnx_signature import signature_from_session
from tests.support import onnx_models


def session(model: bytes) -> Any:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    "model",
    [onnx_models.identity("FP32"), onnx_models.add_sub(), onnx_models.scorer(), onnx_models.lookup()],
    ids=["identity", "add_sub", "scorer", "lookup"],
)
def test_outputs_that_carry_the_inputs_batch_dimension_may_merge(model: bytes) -> None:
    signature = signature_from_session(session(model), None)
    assert signature.max_batch_size > 0
    assert signature.unmergeable == ""


def test_an_output_pooled_over_the_batch_is_never_merged() -> None:
    signature = signature_from_session(session(onnx_models.batch_pooled()), None)
    assert signature.max_batch_size > 0  # a request may still carry several rows
    assert "output 'centered'" in signature.unmergeable
    assert "'rows'" in signature.unmergeable
    assert "'batch'" in signature.unmergeable


def test_an_unnamed_output_batch_dimension_is_not_trusted() -> None:
    signature = signature_from_session(session(onnx_models.reshape_by_five()), None)
    assert "output 'y' has first dimension None" in signature.unmergeable


def test_an_unnamed_input_batch_dimension_is_not_trusted() -> None:
    model = onnx_models.identity("FP32", shape=(None, 3))
    signature = signature_from_session(session(model), None)
    assert "one named batch dimension" in signature.unmergeable


def test_models_without_a_batch_dimension_have_nothing_to_merge() -> None:
    signature = signature_from_session(session(onnx_models.fixed_shape()), None)
    assert signature.max_batch_size == 0
    assert signature.unmergeable == ""
