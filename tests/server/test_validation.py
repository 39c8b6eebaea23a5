"""server.validation: a decoded request checked against a model version's signature."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

from server.errors import InvalidInputError
from server.types import InferRequest, ModelSignature, TensorSpec
from server.validation import validate_request

LABEL = "adder:1"

SIGNATURE = ModelSignature(
    inputs=(
        TensorSpec("a", "FP32", (-1, 4)),
        TensorSpec("b", "INT64", (-1, -1)),
    ),
    outputs=(
        TensorSpec("sum", "FP32", (-1, 4)),
        TensorSpec("count", "INT64", (-1,)),
        TensorSpec("debug", "FP32", (-1, 4)),
    ),
    max_batch_size=8,
)


def _request(requested: tuple[str, ...] = (), **inputs: Any) -> InferRequest:
    return InferRequest(model_name="adder", model_version="1", inputs=inputs, requested_outputs=requested)


def _ok_inputs(batch: int = 2) -> dict[str, Any]:
    return {"a": np.zeros((batch, 4), np.float32), "b": np.zeros((batch, 3), np.int64)}


def _invalid(request: InferRequest, signature: ModelSignature = SIGNATURE) -> str:
    with pytest.raises(InvalidInputError) as info:
        validate_request(request, signature, LABEL)
    message = str(info.value)
    assert LABEL in message
    return message


def test_ok_returns_all_outputs_in_signature_order() -> None:
    assert validate_request(_request(**_ok_inputs()), SIGNATURE, LABEL) == ("sum", "count", "debug")


@pytest.mark.parametrize("batch", [1, 8])
def test_ok_batch_bounds(batch: int) -> None:
    assert validate_request(_request(**_ok_inputs(batch)), SIGNATURE, LABEL) == ("sum", "count", "debug")


def test_requested_outputs_subset_in_request_order() -> None:
    assert validate_request(_request(("debug", "sum"), **_ok_inputs()), SIGNATURE, LABEL) == ("debug", "sum")


def test_requested_outputs_deduplicated() -> None:
    request = _request(("count", "sum", "count", "sum"), **_ok_inputs())
    assert validate_request(request, SIGNATURE, LABEL) == ("count", "sum")


def test_unknown_input() -> None:
    message = _invalid(_request(**_ok_inputs(), c=np.zeros((2, 1), np.float32)))
    assert "no input named 'c'" in message
    assert "expected inputs: a, b" in message


def test_missing_input() -> None:
    message = _invalid(_request(a=np.zeros((2, 4), np.float32)))
    assert "needs input(s) 'b'" in message


def test_wrong_datatype() -> None:
    inputs = _ok_inputs()
    inputs["a"] = inputs["a"].astype(np.float64)
    message = _invalid(_request(**inputs))
    assert "input 'a'" in message
    assert "has datatype FP64 but the model expects FP32" in message


def test_bytes_input_for_numeric_spec() -> None:
    inputs = _ok_inputs()
    inputs["b"] = np.array([[b"x"], [b"y"]], dtype=object)
    message = _invalid(_request(**inputs))
    assert "has datatype BYTES but the model expects INT64" in message


def test_wrong_rank() -> None:
    inputs = _ok_inputs()
    inputs["a"] = np.zeros((2, 4, 1), np.float32)
    message = _invalid(_request(**inputs))
    assert "input 'a'" in message
    assert "shape [2, 4, 1]" in message
    assert "expects 2 dimensions [-1, 4]" in message


def test_wrong_fixed_dimension() -> None:
    inputs = _ok_inputs()
    inputs["a"] = np.zeros((2, 5), np.float32)
    message = _invalid(_request(**inputs))
    assert "input 'a'" in message
    assert "shape [2, 5]" in message
    assert "dimension 1 must be 4" in message


def test_batch_zero() -> None:
    message = _invalid(_request(**_ok_inputs(0)))
    assert "must be at least 1, got 0" in message


def test_batch_above_max() -> None:
    message = _invalid(_request(**_ok_inputs(9)))
    assert "batch size 9" in message
    assert "max_batch_size 8" in message


def test_inputs_disagree_on_batch() -> None:
    inputs = {"a": np.zeros((2, 4), np.float32), "b": np.zeros((3, 3), np.int64)}
    message = _invalid(_request(**inputs))
    assert "disagree on the batch size" in message
    assert "'a': 2" in message
    assert "'b': 3" in message


def test_unknown_requested_output() -> None:
    message = _invalid(_request(("sum", "logits"), **_ok_inputs()))
    assert "no output named 'logits'" in message
    assert "outputs: sum, count, debug" in message


def test_max_batch_size_zero_skips_batch_checks() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("x", "FP32", (-1, 2)), TensorSpec("y", "FP32", (-1,))),
        outputs=(TensorSpec("z", "FP32", (-1, 2)),),
        max_batch_size=0,
    )
    # Leading dimensions 0 and 100 would fail batch checks; without batching they are plain dims.
    request = _request(x=np.zeros((0, 2), np.float32), y=np.zeros((100,), np.float32))
    assert validate_request(request, signature, LABEL) == ("z",)


def test_max_batch_size_zero_still_checks_shape() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("x", "FP32", (3,)),), outputs=(TensorSpec("z", "FP32", (3,)),), max_batch_size=0
    )
    message = _invalid(_request(x=np.zeros((4,), np.float32)), signature)
    assert "dimension 0 must be 3" in message


def test_scalar_input_without_batching() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("s", "INT32", ()),), outputs=(TensorSpec("o", "INT32", ()),), max_batch_size=0
    )
    assert validate_request(_request(s=np.array(3, np.int32)), signature, LABEL) == ("o",)


def test_batch_above_a_default_max_runs_alone_instead_of_being_refused() -> None:
    # No max_batch_size in config.toml: the client never agreed to the server's default limit.
    default = dataclasses.replace(SIGNATURE, max_batch_size_configured=False)
    outputs = validate_request(_request(**_ok_inputs(9)), default, "m:1")
    assert outputs == default.output_names
