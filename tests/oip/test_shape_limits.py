"""oip.codec refuses, with TensorCodecError, every shape numpy cannot build, before numpy sees it.

numpy raised ValueError for these (more than 64 dimensions; a size that overflows its counters even
next to a zero dimension), which surfaced as INTERNAL with a traceback (issue 10, finding 6).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from oip import codec
from oip.codec import MAX_DIMS, MAX_ELEMENTS, TensorCodecError

TOO_BIG = [0, 2**62, 2**62]


@pytest.mark.parametrize(
    ("shape", "expected"),
    [
        ([1] * (MAX_DIMS + 1), "65 dimensions; at most 64"),
        ([1] * 100_000, "100000 dimensions; at most 64"),
        (TOO_BIG, f"at most {MAX_ELEMENTS} elements"),
        ([0, 2**63 - 1, 2**63 - 1], "multiply to"),
        ([2**41], f"at most {MAX_ELEMENTS} elements"),
    ],
)
def test_check_shape_refuses_what_numpy_cannot_build(shape: list[int], expected: str) -> None:
    with pytest.raises(TensorCodecError, match=expected):
        codec.check_shape(shape)


def test_check_shape_accepts_the_limits() -> None:
    assert codec.check_shape([1] * MAX_DIMS) == (1,) * MAX_DIMS
    assert codec.check_shape([0, 2**20, 2**20]) == (0, 2**20, 2**20)
    assert codec.check_shape([]) == ()


@pytest.mark.parametrize("datatype", ["FP32", "UINT8", "BOOL", "BYTES"])
@pytest.mark.parametrize(("shape", "raw"), [(TOO_BIG, b""), ([1] * 65, b"\x00" * 4), ([1] * 65, b"")])
def test_raw_decoding_refuses_them(datatype: str, shape: list[int], raw: bytes) -> None:
    with pytest.raises(TensorCodecError):
        codec.raw_to_array(raw, datatype, shape)


@pytest.mark.parametrize("shape", [TOO_BIG, [1] * 65])
def test_typed_decoding_refuses_them(shape: list[int]) -> None:
    with pytest.raises(TensorCodecError):
        codec.contents_to_array([], "FP32", shape)


def test_empty_tensors_within_the_limits_still_decode() -> None:
    array: Any = codec.raw_to_array(b"", "FP32", [0, 3])
    assert array.shape == (0, 3) and array.dtype == np.float32
    assert codec.raw_to_array(b"\x00" * 4, "FP32", [1] * MAX_DIMS).shape == (1,) * MAX_DIMS


def test_an_unknown_datatype_is_repeated_briefly() -> None:
    with pytest.raises(TensorCodecError) as raised:
        codec.dtype_for("X" * 100_000)
    assert len(str(raised.value)) < 200
