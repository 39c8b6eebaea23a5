"""oip.codec: raw blobs, BYTES length prefixes, typed contents and datatype names."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest

from oip import codec
from oip.codec import TensorCodecError

FIXED_SAMPLES: dict[str, list[Any]] = {
    "BOOL": [True, False, True, True, False, False],
    "UINT8": [0, 1, 2, 127, 128, 255],
    "UINT16": [0, 1, 256, 1000, 40000, 65535],
    "UINT32": [0, 1, 65536, 7, 3_000_000_000, 2**32 - 1],
    "UINT64": [0, 1, 2**32, 7, 2**63, 2**64 - 1],
    "INT8": [-128, -1, 0, 1, 100, 127],
    "INT16": [-32768, -1, 0, 1, 300, 32767],
    "INT32": [-(2**31), -1, 0, 1, 70000, 2**31 - 1],
    "INT64": [-(2**63), -1, 0, 1, 2**40, 2**63 - 1],
    "FP16": [-1.5, 0.0, 0.25, 2.0, 65504.0, -0.125],
    "FP32": [-1.5, 0.0, 0.1, 3.25, 1e30, -7.0],
    "FP64": [-1.5, 0.0, 0.1, 3.25, 1e300, -7.0],
}


def _sample(datatype: str) -> np.ndarray:
    return np.array(FIXED_SAMPLES[datatype], dtype=codec.DATATYPE_TO_DTYPE[datatype]).reshape(2, 3)


# ------------------------------------------------------------------ raw round trip


@pytest.mark.parametrize("datatype", sorted(FIXED_SAMPLES))
def test_raw_round_trip_fixed_size(datatype: str) -> None:
    array = _sample(datatype)
    assert codec.datatype_for(array.dtype) == datatype

    raw = codec.array_to_raw(array)
    assert len(raw) == array.size * array.dtype.itemsize

    decoded = codec.raw_to_array(raw, datatype, [2, 3])
    assert decoded.dtype == codec.DATATYPE_TO_DTYPE[datatype]
    assert decoded.shape == (2, 3)
    np.testing.assert_array_equal(decoded, array)


def test_raw_round_trip_bytes() -> None:
    array = np.array([[b"a", b""], [b"\x00\xff", "h\u00e9".encode()]], dtype=object)
    raw = codec.array_to_raw(array)
    decoded = codec.raw_to_array(raw, "BYTES", [2, 2])
    assert decoded.dtype == np.object_
    assert decoded.shape == (2, 2)
    assert decoded.tolist() == [[b"a", b""], [b"\x00\xff", "h\u00e9".encode()]]


def test_raw_little_endian_exact_bytes() -> None:
    assert codec.array_to_raw(np.array([1, 256], dtype=np.int32)) == b"\x01\x00\x00\x00\x00\x01\x00\x00"


def test_raw_decode_is_zero_copy_read_only_view() -> None:
    raw = codec.array_to_raw(np.arange(6, dtype=np.float32))
    decoded = codec.raw_to_array(raw, "FP32", [2, 3])
    assert not decoded.flags.writeable
    assert not decoded.flags.owndata
    assert np.shares_memory(decoded, np.frombuffer(raw, dtype=np.uint8))
    with pytest.raises(ValueError, match="read-only"):
        decoded[0, 0] = 1.0


@pytest.mark.parametrize("datatype", ["UINT16", "INT32", "INT64", "FP16", "FP32", "FP64"])
def test_big_endian_input_is_encoded_little_endian(datatype: str) -> None:
    little = _sample(datatype)
    big = little.astype(little.dtype.newbyteorder(">"))
    assert big.dtype.byteorder == ">"
    assert codec.datatype_for(big.dtype) == datatype
    raw = codec.array_to_raw(big)
    assert raw == little.tobytes()
    np.testing.assert_array_equal(codec.raw_to_array(raw, datatype, [2, 3]), little)


def test_non_contiguous_array_encodes_in_row_major_order() -> None:
    base = np.arange(12, dtype=np.int16).reshape(3, 4)
    transposed = base.T
    assert not transposed.flags.c_contiguous
    raw = codec.array_to_raw(transposed)
    assert raw == np.ascontiguousarray(transposed).tobytes()
    np.testing.assert_array_equal(codec.raw_to_array(raw, "INT16", [4, 3]), transposed)

    strided = base[:, ::2]
    np.testing.assert_array_equal(codec.raw_to_array(codec.array_to_raw(strided), "INT16", [3, 2]), strided)


def test_non_contiguous_bytes_array_encodes_in_row_major_order() -> None:
    base = np.array([[b"a", b"b"], [b"c", b"d"]], dtype=object)
    raw = codec.array_to_raw(base.T)
    assert codec.raw_to_array(raw, "BYTES", [2, 2]).tolist() == [[b"a", b"c"], [b"b", b"d"]]


# -------------------------------------------------------------------- BYTES layout


def test_bytes_length_prefix_layout_exact() -> None:
    array = np.array([b"ab", b"", "\u00e9"], dtype=object)
    assert codec.serialize_bytes(array) == (b"\x02\x00\x00\x00ab" + b"\x00\x00\x00\x00" + b"\x02\x00\x00\x00\xc3\xa9")


def test_bytes_serialize_accepts_numpy_string_arrays() -> None:
    assert codec.serialize_bytes(np.array(["hi", "x"])) == b"\x02\x00\x00\x00hi\x01\x00\x00\x00x"
    assert codec.serialize_bytes(np.array([b"hi"])) == b"\x02\x00\x00\x00hi"


def test_deserialize_bytes_returns_bytes_items() -> None:
    raw = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    decoded = codec.deserialize_bytes(raw, 2)
    assert decoded.dtype == np.object_
    assert decoded.tolist() == [b"abc", b""]
    assert all(type(item) is bytes for item in decoded)


def test_bytes_truncated_length_prefix() -> None:
    raw = struct.pack("<I", 1) + b"a" + b"\x01\x00"
    with pytest.raises(TensorCodecError, match=r"truncated: 2 bytes left where a 4-byte length prefix"):
        codec.deserialize_bytes(raw, 2)


def test_bytes_element_longer_than_blob() -> None:
    raw = struct.pack("<I", 1) + b"a" + struct.pack("<I", 10) + b"xyz"
    with pytest.raises(TensorCodecError, match=r"BYTES element 1 declares 10 bytes but only 3 remain"):
        codec.deserialize_bytes(raw, 2)


def test_bytes_element_count_mismatch() -> None:
    raw = codec.serialize_bytes(np.array([b"a", b"b", b"c"], dtype=object))
    with pytest.raises(TensorCodecError, match=r"holds 3 elements but the shape needs 2"):
        codec.raw_to_array(raw, "BYTES", [2])
    with pytest.raises(TensorCodecError, match=r"holds 3 elements but the shape needs 4"):
        codec.raw_to_array(raw, "BYTES", [2, 2])


def test_bytes_empty_blob_for_empty_shape() -> None:
    decoded = codec.raw_to_array(b"", "BYTES", [0, 3])
    assert decoded.shape == (0, 3)
    assert decoded.dtype == np.object_


# ------------------------------------------------------------------- raw errors


def test_raw_size_mismatch_mentions_both_sizes() -> None:
    with pytest.raises(TensorCodecError) as info:
        codec.raw_to_array(b"\x00" * 10, "FP32", [2, 2])
    message = str(info.value)
    assert "10 bytes" in message
    assert "16 bytes" in message
    assert "[2, 2]" in message
    assert "FP32" in message


def test_raw_negative_dimension() -> None:
    with pytest.raises(TensorCodecError, match=r"shape \[2, -1\] has a negative dimension"):
        codec.raw_to_array(b"", "FP32", [2, -1])


def test_check_shape_rejects_negative_and_returns_tuple() -> None:
    assert codec.check_shape([1, 0, 3]) == (1, 0, 3)
    with pytest.raises(TensorCodecError, match="negative dimension"):
        codec.check_shape([-1])


@pytest.mark.parametrize("datatype", ["FP32", "BYTES"])
def test_scalar_shape(datatype: str) -> None:
    assert codec.element_count([]) == 1
    array = np.array(b"x", dtype=object) if datatype == "BYTES" else np.array(2.5, dtype=np.float32)
    decoded = codec.raw_to_array(codec.array_to_raw(array), datatype, [])
    assert decoded.shape == ()
    assert decoded.item() == array.item()


def test_scalar_raw_size_mismatch() -> None:
    with pytest.raises(TensorCodecError, match=r"needs 1 x 8 = 8 bytes"):
        codec.raw_to_array(b"\x00" * 4, "FP64", [])


def test_zero_element_shape() -> None:
    decoded = codec.raw_to_array(b"", "INT64", [0, 4])
    assert decoded.shape == (0, 4)
    assert codec.element_count([3, 0]) == 0


# --------------------------------------------------------------- datatype names


def test_unknown_datatype_lists_valid_ones() -> None:
    with pytest.raises(TensorCodecError) as info:
        codec.dtype_for("FLOAT32")
    message = str(info.value)
    assert "'FLOAT32'" in message
    for name in codec.DATATYPE_TO_DTYPE:
        assert name in message


def test_unknown_datatype_in_raw_decode() -> None:
    with pytest.raises(TensorCodecError, match="unknown datatype 'INT128'"):
        codec.raw_to_array(b"", "INT128", [0])


def test_bf16_not_supported() -> None:
    with pytest.raises(TensorCodecError, match="BF16 is not supported"):
        codec.dtype_for("BF16")
    with pytest.raises(TensorCodecError, match="not supported"):
        codec.raw_to_array(b"\x00\x00", "BF16", [1])


@pytest.mark.parametrize("dtype", [np.dtype("<U5"), np.dtype("S3"), np.dtype(object)], ids=["str", "bytes", "object"])
def test_datatype_for_string_like_is_bytes(dtype: np.dtype) -> None:
    assert codec.datatype_for(dtype) == "BYTES"


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128, "datetime64[s]"])
def test_datatype_for_unsupported_dtype(dtype: Any) -> None:
    with pytest.raises(TensorCodecError, match="has no Open Inference Protocol datatype"):
        codec.datatype_for(np.dtype(dtype))


def test_array_to_raw_rejects_complex() -> None:
    with pytest.raises(TensorCodecError, match="complex"):
        codec.array_to_raw(np.zeros(2, dtype=np.complex64))


@pytest.mark.parametrize("datatype", sorted(codec.DATATYPE_TO_DTYPE))
def test_dtype_and_datatype_names_are_inverse(datatype: str) -> None:
    assert codec.datatype_for(codec.dtype_for(datatype)) == datatype


# ---------------------------------------------------------------- typed contents


@pytest.mark.parametrize("datatype", sorted(set(FIXED_SAMPLES) - {"FP16"}))
def test_contents_round_trip(datatype: str) -> None:
    array = _sample(datatype)
    field, values = codec.array_to_contents(array)
    assert field == codec.CONTENTS_FIELD[datatype]
    assert isinstance(values, list)
    assert len(values) == 6
    decoded = codec.contents_to_array(values, datatype, [2, 3])
    assert decoded.dtype == codec.DATATYPE_TO_DTYPE[datatype]
    np.testing.assert_array_equal(decoded, array)


def test_contents_round_trip_bytes() -> None:
    array = np.array([["a", "bc"], ["", "d"]], dtype=object)
    field, values = codec.array_to_contents(array)
    assert field == "bytes_contents"
    assert values == [b"a", b"bc", b"", b"d"]
    decoded = codec.contents_to_array(values, "BYTES", [2, 2])
    assert decoded.dtype == np.object_
    assert decoded.tolist() == [[b"a", b"bc"], [b"", b"d"]]


def test_contents_fields_for_small_ints_share_wide_fields() -> None:
    assert codec.array_to_contents(np.array([1], dtype=np.uint8))[0] == "uint_contents"
    assert codec.array_to_contents(np.array([1], dtype=np.int16))[0] == "int_contents"
    assert codec.array_to_contents(np.array([1], dtype=np.uint64))[0] == "uint64_contents"
    assert codec.array_to_contents(np.array([True]))[0] == "bool_contents"


@pytest.mark.parametrize(
    ("datatype", "values"),
    [
        ("UINT8", [0, 256]),
        ("UINT8", [-1, 0]),
        ("INT8", [-129, 0]),
        ("INT8", [0, 128]),
        ("UINT16", [65536, 0]),
        ("INT16", [40000, 0]),
        ("UINT32", [2**32, 0]),
        ("INT32", [2**31, 0]),
        ("INT32", [-(2**31) - 1, 0]),
        ("UINT64", [-1, 0]),
    ],
)
def test_contents_out_of_range_ints(datatype: str, values: list[int]) -> None:
    with pytest.raises(TensorCodecError, match=f"out of range for {datatype}"):
        codec.contents_to_array(values, datatype, [2])


def test_contents_in_range_extremes_accepted() -> None:
    np.testing.assert_array_equal(codec.contents_to_array([-128, 127], "INT8", [2]), np.array([-128, 127], np.int8))
    np.testing.assert_array_equal(codec.contents_to_array([0, 255], "UINT8", [2]), np.array([0, 255], np.uint8))


def test_contents_fp16_is_raw_only() -> None:
    with pytest.raises(TensorCodecError, match="FP16 can only be sent as raw content"):
        codec.contents_to_array([1.0], "FP16", [1])
    with pytest.raises(TensorCodecError, match="FP16 can only be sent as raw content"):
        codec.array_to_contents(np.array([1.0], dtype=np.float16))


def test_contents_unknown_datatype_gets_the_clear_message() -> None:
    with pytest.raises(TensorCodecError, match="unknown datatype 'FLOAT'; expected one of BOOL"):
        codec.contents_to_array([1.0], "FLOAT", [1])
    with pytest.raises(TensorCodecError, match="BF16 is not supported"):
        codec.contents_to_array([1.0], "BF16", [1])


def test_contents_count_mismatch() -> None:
    with pytest.raises(TensorCodecError, match=r"fp32_contents holds 3 values but shape \[2, 2\] needs 4"):
        codec.contents_to_array([1.0, 2.0, 3.0], "FP32", [2, 2])


def test_contents_negative_dims() -> None:
    with pytest.raises(TensorCodecError, match="negative dimension"):
        codec.contents_to_array([], "INT32", [-1])


def test_contents_scalar_and_empty() -> None:
    scalar = codec.contents_to_array([7], "INT64", [])
    assert scalar.shape == ()
    assert scalar.item() == 7
    empty = codec.contents_to_array([], "INT32", [0, 2])
    assert empty.shape == (0, 2)
    assert empty.dtype == np.int32


def test_array_to_contents_complex_rejected() -> None:
    with pytest.raises(TensorCodecError, match="no Open Inference Protocol datatype"):
        codec.array_to_contents(np.zeros(1, dtype=np.complex128))


@pytest.mark.parametrize("values", [[0, 2**63 + 1], [1, 2**64 - 1]], ids=["above-int64-max", "uint64-max"])
def test_contents_uint64_large_values_kept_exact(values: list[int]) -> None:
    # Mixing values below and above 2**63 must not detour through float64.
    decoded = codec.contents_to_array(values, "UINT64", [2])
    assert decoded.dtype == np.uint64
    assert decoded.tolist() == values


def test_contents_int64_out_of_range_mixed_with_negative_rejected() -> None:
    with pytest.raises(TensorCodecError, match="out of range for INT64"):
        codec.contents_to_array([-1, 2**63], "INT64", [2])
