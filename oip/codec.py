"""Tensor wire codec for the Open Inference Protocol, shared by server and clients.

Pure numpy and protocol facts: datatype names, raw little-endian blobs, the
4-byte length prefix of BYTES elements, and which typed-contents field carries
which datatype. Nothing here knows about gRPC or a model runtime.
"""

from __future__ import annotations

import math
import struct
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

#: Protocol datatype name -> numpy dtype (little-endian, as on the wire).
DATATYPE_TO_DTYPE: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(np.object_),
}

#: Byte orders that are already little-endian on the wire ("=" only on a little-endian host; "|" = no order).
_LITTLE_OR_NATIVE = frozenset({"<", "|", "="} if sys.byteorder == "little" else {"<", "|"})

#: Datatypes a server may advertise but that numpy cannot hold.
UNSUPPORTED_DATATYPES = frozenset({"BF16"})

#: Datatype -> the InferTensorContents field that carries it as typed values.
CONTENTS_FIELD: dict[str, str] = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}

#: Most dimensions a tensor may have: numpy's limit (NPY_MAXDIMS in numpy 2), so any shape we accept
#: is one numpy can build.
MAX_DIMS = 64
#: Most elements a shape may describe, counting zero dimensions as 1 (a message cannot carry more than
#: 2 GiB, so no real tensor comes near). Checked with Python ints before numpy sees the shape: numpy
#: refuses sizes that overflow its 64-bit counters, even of an empty array such as [0, 2**62, 2**62].
MAX_ELEMENTS = 2**40
#: Characters of an unknown datatype name a message repeats (the name comes from a client).
_SHOWN_DATATYPE_CHARS = 32

_KIND_SIZE_TO_DATATYPE: dict[tuple[str, int], str] = {
    (dtype.kind, dtype.itemsize): name for name, dtype in DATATYPE_TO_DTYPE.items() if name != "BYTES"
}


class TensorCodecError(ValueError):
    """A tensor's bytes, shape or datatype do not fit together."""


def dtype_for(datatype: str) -> np.dtype[Any]:
    """The numpy dtype for a protocol datatype name, or TensorCodecError."""
    try:
        return DATATYPE_TO_DTYPE[datatype]
    except KeyError:
        if datatype in UNSUPPORTED_DATATYPES:
            raise TensorCodecError(f"datatype {datatype} is not supported by this server") from None
        known = ", ".join(DATATYPE_TO_DTYPE)
        name = datatype if len(datatype) <= _SHOWN_DATATYPE_CHARS else f"{datatype[:_SHOWN_DATATYPE_CHARS]}…"
        raise TensorCodecError(f"unknown datatype {name!r}; expected one of {known}") from None


def datatype_for(dtype: np.dtype[Any]) -> str:
    """The protocol datatype name for a numpy dtype (str/bytes/object -> BYTES)."""
    if dtype.kind in "OSU":
        return "BYTES"
    try:
        return _KIND_SIZE_TO_DATATYPE[(dtype.kind, dtype.itemsize)]
    except KeyError:
        raise TensorCodecError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


def element_count(shape: Sequence[int]) -> int:
    """Number of elements in a tensor of this shape (1 for a scalar)."""
    return math.prod(shape)


def check_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """A concrete shape that numpy can build: at most MAX_DIMS dimensions, each >= 0, at most MAX_ELEMENTS."""
    if len(shape) > MAX_DIMS:  # before anything iterates over a client's (possibly huge) list
        raise TensorCodecError(f"shape has {len(shape)} dimensions; at most {MAX_DIMS} are allowed")
    dims = tuple(shape)
    if dims and min(dims) < 0:
        raise TensorCodecError(f"shape {list(dims)} has a negative dimension; request shapes must be concrete")
    extent = math.prod(dim for dim in dims if dim)
    if extent > MAX_ELEMENTS:
        raise TensorCodecError(
            f"shape {list(dims)} is too large: its non-zero dimensions multiply to {extent}; at most "
            f"{MAX_ELEMENTS} elements are allowed (zero dimensions count as 1)"
        )
    return dims


# ------------------------------------------------------------------ raw blobs


def raw_to_array(raw: bytes | memoryview, datatype: str, shape: Sequence[int]) -> npt.NDArray[Any]:
    """Decode one raw blob; fixed-size types become a zero-copy read-only view."""
    dtype = DATATYPE_TO_DTYPE.get(datatype)
    # The hot path: a fixed-size type whose non-empty bytes fit the shape. Non-empty bytes bound the element
    # count; an empty tensor goes through check_shape, since a zero dimension hides the size of the others.
    if dtype is not None and dtype.kind != "O" and raw and len(shape) <= MAX_DIMS:
        dims = tuple(shape)
        if len(raw) == math.prod(dims) * dtype.itemsize and (not dims or min(dims) >= 0):
            return np.frombuffer(raw, dtype=dtype).reshape(dims)
    dims = check_shape(shape)
    count = element_count(dims)
    if datatype == "BYTES":
        return deserialize_bytes(raw, count).reshape(dims)
    dtype = dtype_for(datatype)
    expected = count * dtype.itemsize
    if len(raw) != expected:
        raise TensorCodecError(
            f"raw content holds {len(raw)} bytes but shape {list(dims)} of {datatype} "
            f"needs {count} x {dtype.itemsize} = {expected} bytes"
        )
    return np.frombuffer(raw, dtype=dtype).reshape(dims)


def has_wire_byte_order(dtype: np.dtype[Any]) -> bool:
    """True when the dtype's bytes are already little-endian, as raw contents carry them."""
    return dtype.byteorder in _LITTLE_OR_NATIVE


def array_to_raw(array: npt.NDArray[Any]) -> bytes:
    """Encode an array as one raw blob in row-major order."""
    if datatype_for(array.dtype) == "BYTES":  # also rejects dtypes the protocol cannot carry
        return serialize_bytes(array)
    if has_wire_byte_order(array.dtype):
        return array.tobytes()  # row-major whatever the strides
    return array.astype(array.dtype.newbyteorder("<")).tobytes()


def _element_bytes(item: object) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    if isinstance(item, (bytearray, memoryview)):
        return bytes(item)
    return str(item).encode("utf-8")


def serialize_bytes(array: npt.NDArray[Any]) -> bytes:
    """BYTES tensor -> elements each prefixed by a 4-byte little-endian length."""
    parts: list[bytes] = []
    for item in array.reshape(-1):
        data = _element_bytes(item)
        parts.append(struct.pack("<I", len(data)))
        parts.append(data)
    return b"".join(parts)


def deserialize_bytes(raw: bytes | memoryview, count: int) -> npt.NDArray[np.object_]:
    """Length-prefixed BYTES blob -> 1-D object array of `count` bytes items."""
    items: list[bytes] = []
    view = memoryview(raw)
    offset = 0
    while offset < len(view):
        if offset + 4 > len(view):
            raise TensorCodecError(
                f"BYTES content is truncated: {len(view) - offset} bytes left where a 4-byte length prefix was expected"
            )
        (length,) = struct.unpack_from("<I", view, offset)
        offset += 4
        if offset + length > len(view):
            raise TensorCodecError(
                f"BYTES element {len(items)} declares {length} bytes but only {len(view) - offset} remain"
            )
        items.append(bytes(view[offset : offset + length]))
        offset += length
    if len(items) != count:
        raise TensorCodecError(f"BYTES content holds {len(items)} elements but the shape needs {count}")
    result = np.empty(count, dtype=np.object_)
    result[:] = items
    return result


# -------------------------------------------------------------- typed contents


def contents_to_array(values: Sequence[Any], datatype: str, shape: Sequence[int]) -> npt.NDArray[Any]:
    """Typed contents (a repeated field's values) -> array of the datatype."""
    dims = check_shape(shape)
    count = element_count(dims)
    if datatype not in CONTENTS_FIELD:
        dtype_for(datatype)  # unknown names get the clearer message
        raise TensorCodecError(f"datatype {datatype} can only be sent as raw content, not typed contents")
    if len(values) != count:
        raise TensorCodecError(
            f"{CONTENTS_FIELD[datatype]} holds {len(values)} values but shape {list(dims)} needs {count}"
        )
    if datatype == "BYTES":
        result = np.empty(count, dtype=np.object_)
        result[:] = [bytes(value) for value in values]
        return result.reshape(dims)
    try:
        # Straight to the target dtype: numpy >= 2 rejects out-of-range Python ints here, and
        # no intermediate float array can round large 64-bit values.
        return np.array(values, dtype=DATATYPE_TO_DTYPE[datatype]).reshape(dims)
    except OverflowError:
        raise TensorCodecError(f"a value in {CONTENTS_FIELD[datatype]} is out of range for {datatype}") from None


def array_to_contents(array: npt.NDArray[Any]) -> tuple[str, list[Any]]:
    """Array -> (InferTensorContents field name, flat list of values)."""
    datatype = datatype_for(array.dtype)
    if datatype not in CONTENTS_FIELD:
        raise TensorCodecError(f"datatype {datatype} can only be sent as raw content")
    flat = array.reshape(-1)
    if datatype == "BYTES":
        return CONTENTS_FIELD[datatype], [_element_bytes(item) for item in flat]
    return CONTENTS_FIELD[datatype], flat.tolist()
