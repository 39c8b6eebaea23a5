"""server.batching.tensors: merging requests along the batch dimension and splitting outputs back exactly."""

from __future__ import annotations

import numpy as np
import pytest

from server.batching.tensors import merge_inputs, split_outputs
from server.errors import InferenceFailedError
from tests.server.batching.conftest import MakeRequest
from tests.server.batching.support import rows


async def test_merge_concatenates_every_input_along_axis_0(make_request: MakeRequest) -> None:
    a = make_request({"x": rows(1.0), "ids": np.array([10], dtype=np.int64)})
    b = make_request({"x": rows(2.0, 3.0), "ids": np.array([20, 30], dtype=np.int64)})
    merged = merge_inputs([a, b])
    assert merged.keys() == {"x", "ids"}
    np.testing.assert_array_equal(merged["x"], rows(1.0, 2.0, 3.0))
    np.testing.assert_array_equal(merged["ids"], [10, 20, 30])
    assert merged["x"].dtype == np.float32
    assert merged["ids"].dtype == np.int64


async def test_merge_of_one_request_returns_its_own_arrays(make_request: MakeRequest) -> None:
    request = make_request({"x": rows(1.0, 2.0)})
    merged = merge_inputs([request])
    assert merged["x"] is request.inputs["x"]


async def test_split_gives_each_request_exactly_its_rows(make_request: MakeRequest) -> None:
    batch = [make_request({"x": rows(*values)}) for values in ((1.0,), (2.0, 3.0, 4.0), (5.0, 6.0))]
    merged = merge_inputs(batch)
    outputs = {"y": merged["x"] * 2, "sum": merged["x"].sum(axis=1)}
    parts = split_outputs(outputs, batch, "m:1")
    assert [part.keys() for part in parts] == [{"y", "sum"}] * 3
    for request, part in zip(batch, parts, strict=True):
        np.testing.assert_array_equal(part["y"], request.inputs["x"] * 2)
        np.testing.assert_array_equal(part["sum"], request.inputs["x"].sum(axis=1))
    assert [part["y"].shape for part in parts] == [(1, 3), (3, 3), (2, 3)]


async def test_split_of_one_request_returns_the_outputs_as_they_are(make_request: MakeRequest) -> None:
    request = make_request({"x": rows(1.0, 2.0)})
    outputs = {"y": np.zeros((7,), dtype=np.float32)}  # not checked against the rows: nothing to split
    assert split_outputs(outputs, [request], "m:1") == [outputs]


async def test_split_rejects_an_output_whose_first_dim_is_not_the_batch(make_request: MakeRequest) -> None:
    batch = [make_request({"x": rows(1.0)}), make_request({"x": rows(2.0, 3.0)})]
    outputs = {"y": np.zeros((3, 2)), "pooled": np.zeros((1, 2))}
    with pytest.raises(InferenceFailedError, match=r"model m:1 .*output 'pooled'.* first dimension 1 .* 3 rows"):
        split_outputs(outputs, batch, "m:1")


async def test_split_rejects_a_scalar_output(make_request: MakeRequest) -> None:
    batch = [make_request(), make_request()]
    with pytest.raises(InferenceFailedError, match=r"model m:2 .*output 'loss'.*no batch dimension"):
        split_outputs({"loss": np.array(1.0, dtype=np.float32)}, batch, "m:2")
