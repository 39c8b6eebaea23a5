"""The native router hashes sticky keys itself (native/src/fast_path.cpp): a key must land in the same bucket as
server.routing.sticky puts it, or a caller would switch versions with the frontend that served it."""

from __future__ import annotations

import zlib
from types import ModuleType

from hypothesis import given, settings
from hypothesis import strategies as st

from server.routing.sticky import MAX_KEY_BYTES, bucket_after, sticky_bucket
from server.routing.table import BUCKETS


@settings(max_examples=500, deadline=None, database=None)
@given(salt=st.binary(max_size=40), key=st.binary(min_size=1, max_size=MAX_KEY_BYTES))
def test_the_bucket_is_pythons(native: ModuleType, salt: bytes, key: bytes) -> None:
    salt_crc = zlib.crc32(salt)
    bucket = native.sticky_bucket(salt_crc, key)
    assert bucket == bucket_after(salt_crc, key) == sticky_bucket(salt, key)
    assert 0 <= bucket < BUCKETS


def test_known_keys_keep_their_buckets(native: ModuleType) -> None:
    # Pinned: a caller's version must not move when either implementation changes (or after an upgrade).
    known = {
        (b"fraud", b"user-1"): 275,
        (b"", b"a"): 9779,
        (b"m", "ключ".encode()): 5826,
        (b"s" * 300, b"\x00\xff"): 5501,
    }
    for (salt, key), bucket in known.items():
        assert native.sticky_bucket(zlib.crc32(salt), key) == sticky_bucket(salt, key) == bucket
