"""Sticky keys: turning a caller's key into a bucket, the same in every process and after every restart."""

from __future__ import annotations

import zlib

from server.routing.table import BUCKETS

MAX_KEY_BYTES = 256
"""Longer keys are not hashed (a client bug or an attack); the request is routed by weight instead."""

#: Knuth's multiplicative constant (2^32 / golden ratio): spreads crc32 values evenly over the buckets,
#: so keys that differ only in their last character do not cluster.
_MIX = 2_654_435_761
_MASK = 0xFFFF_FFFF


def sticky_bucket(salt: bytes, key: bytes) -> int:
    """The bucket of a key: crc32 of salt then key, mixed, scaled onto [0, BUCKETS). Never Python's `hash()`."""
    return bucket_after(zlib.crc32(salt), key)


def bucket_after(salt_crc: int, key: bytes) -> int:
    """`sticky_bucket` with the salt's crc32 already computed (a routing table keeps it)."""
    return (((zlib.crc32(key, salt_crc) * _MIX) & _MASK) * BUCKETS) >> 32


def key_bytes(value: object) -> bytes | str:
    """A sticky value as the bytes that are hashed, or the reason it cannot be used.

    Strings (UTF-8) and integers (their decimal text) are keys, and so are the bytes of a
    binary (`-bin`) metadata value. Booleans, floats and anything empty or over MAX_KEY_BYTES
    are refused; the caller routes such requests by weight and counts the reason.
    """
    if isinstance(value, str):
        key = value.encode("utf-8", "surrogatepass")
    elif isinstance(value, bytes):
        key = value
    elif isinstance(value, int) and not isinstance(value, bool):
        key = str(value).encode()
    else:
        return "type"
    if not key:
        return "empty"
    if len(key) > MAX_KEY_BYTES:
        return "length"
    return key
