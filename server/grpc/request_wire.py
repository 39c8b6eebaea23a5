"""Large ModelInferRequests without copying their tensors: raw_input_contents as views of the wire bytes.

Parsing a request with protobuf copies every `raw_input_contents` blob into the parsed message, and
reading one from it copies it again into a new `bytes`: a 64 MiB request held about three times its
size while it was served. For a large message this scans the top-level fields instead (a handful:
names, id, parameters, one per input and output, one per blob), keeps the blobs as memoryviews of the
message grpc handed us, and gives protobuf only the rest, which is small. The numpy inputs are then
zero-copy views of the wire bytes themselves.

Small messages, nearly all of them, skip this: protobuf's C parser is faster than a Python scan.
Anything the scan does not expect (a malformed or truncated field, a wire type ModelInferRequest never
uses) sends the whole message to protobuf, whose error message then describes it.
"""

from __future__ import annotations

#: Messages at least this large are split; below it the copies cost less than the scan.
SPLIT_MIN_BYTES = 256 * 1024

#: ModelInferRequest.raw_input_contents: field 7, length-delimited.
_RAW_INPUT_CONTENTS = 7

_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


def _read_varint(data: memoryview, position: int) -> tuple[int, int]:
    """(value, position after it); IndexError past the end, ValueError past ten bytes."""
    value = 0
    shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than ten bytes")


def split_raw_contents(raw: bytes) -> tuple[bytes, list[memoryview]] | None:
    """(the message without its raw_input_contents, those blobs as views of `raw`), or None when `raw`
    holds no blob or is not a well-formed sequence of fields (then let protobuf parse and judge it)."""
    data = memoryview(raw)
    end = len(data)
    kept: list[memoryview] = []
    blobs: list[memoryview] = []
    position = 0
    try:
        while position < end:
            start = position
            key, position = _read_varint(data, position)
            wire_type = key & 7
            if wire_type == _LENGTH_DELIMITED:
                length, position = _read_varint(data, position)
                if position + length > end:
                    return None
                if key >> 3 == _RAW_INPUT_CONTENTS:
                    blobs.append(data[position : position + length])
                else:
                    kept.append(data[start : position + length])
                position += length
            elif wire_type == _VARINT:
                _, position = _read_varint(data, position)
                kept.append(data[start:position])
            elif wire_type in (_FIXED64, _FIXED32):
                position += 8 if wire_type == _FIXED64 else 4
                if position > end:
                    return None
                kept.append(data[start:position])
            else:  # groups: never in this message
                return None
    except (IndexError, ValueError):
        return None
    if not blobs:
        return None
    return b"".join(kept), blobs
