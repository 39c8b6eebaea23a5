"""server.admission.RequestValidator: validation once per layout, bounded memory, errors never cached."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from server.admission import RequestValidator
from server.batching.pending import merge_key
from server.errors import InvalidInputError
from server.types import InferRequest, ModelSignature, TensorSpec

SIGNATURE = ModelSignature(
    inputs=(TensorSpec("a", "FP32", (-1, 4)),),
    outputs=(TensorSpec("y", "FP32", (-1, 4)), TensorSpec("z", "INT64", (-1,))),
    max_batch_size=8,
)


def _request(rows: int = 2, requested: tuple[str, ...] = (), **inputs: Any) -> InferRequest:
    inputs = inputs or {"a": np.zeros((rows, 4), np.float32)}
    return InferRequest(model_name="m", model_version="", inputs=inputs, requested_outputs=requested)


def test_admission_carries_outputs_rows_and_merge_key() -> None:
    validator = RequestValidator(SIGNATURE, "m:1")
    request = _request(rows=3, requested=("z",))
    admission = validator.admit(request)
    assert admission.output_names == ("z",)
    assert admission.rows == 3
    assert admission.merge_key == merge_key(request.inputs, ("z",))


def test_a_known_layout_is_admitted_from_memory() -> None:
    validator = RequestValidator(SIGNATURE, "m:1")
    first = validator.admit(_request())
    assert validator.admit(_request()) is first  # same layout, new arrays: the remembered admission
    other_rows = validator.admit(_request(rows=5))
    assert other_rows is not first
    assert other_rows.rows == 5
    assert other_rows.merge_key == first.merge_key  # different batch sizes still merge


def test_layouts_differ_by_dtype_and_requested_outputs() -> None:
    validator = RequestValidator(SIGNATURE, "m:1")
    validator.admit(_request())
    with pytest.raises(InvalidInputError, match="datatype FP64"):
        validator.admit(_request(a=np.zeros((2, 4), np.float64)))
    assert validator.admit(_request(requested=("y",))).output_names == ("y",)


def test_rejected_layouts_are_checked_every_time() -> None:
    validator = RequestValidator(SIGNATURE, "m:1")
    for _ in range(3):
        with pytest.raises(InvalidInputError, match="max_batch_size 8"):
            validator.admit(_request(rows=9))
    assert validator.admit(_request(rows=8)).rows == 8


def test_memory_is_bounded_but_admission_still_works_past_the_bound() -> None:
    validator = RequestValidator(SIGNATURE, "m:1", max_layouts=2)
    admissions = [validator.admit(_request(rows=rows)) for rows in (1, 2, 3, 4)]
    assert [a.rows for a in admissions] == [1, 2, 3, 4]
    assert validator.admit(_request(rows=1)) is admissions[0]  # remembered
    assert validator.admit(_request(rows=4)) is not admissions[3]  # past the bound: checked afresh
    assert validator.admit(_request(rows=4)).rows == 4


def test_models_without_a_batch_dimension_count_one_row() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("a", "FP32", (3,)),), outputs=(TensorSpec("y", "FP32", (3,)),), max_batch_size=0
    )
    admission = RequestValidator(signature, "m:1").admit(_request(a=np.zeros((3,), np.float32)))
    assert admission.rows == 1


def _text(*items: bytes) -> np.ndarray:
    array = np.empty(len(items), dtype=np.object_)
    array[:] = list(items)
    return array.reshape(1, len(items))


def test_string_inputs_are_checked_for_utf8_on_every_request() -> None:
    signature = ModelSignature(
        inputs=(TensorSpec("n", "FP32", (-1, 1)), TensorSpec("s", "BYTES", (-1, 2))),
        outputs=(TensorSpec("y", "BYTES", (-1, 2)),),
        max_batch_size=8,
    )
    validator = RequestValidator(signature, "m:1")
    number = np.zeros((1, 1), np.float32)
    validator.admit(_request(n=number, s=_text("é".encode(), b"ok")))
    with pytest.raises(InvalidInputError, match=r"input 's' of model m:1 has an element that is not UTF-8 \(element 1"):
        validator.admit(_request(n=number, s=_text(b"ok", b"\xff")))  # a remembered layout, bad data
    validator.admit(_request(n=number, s=_text(b"", b"fine")))
