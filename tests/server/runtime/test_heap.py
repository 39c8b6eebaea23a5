"""server.runtime.heap: freed memory held by glibc's malloc goes back to the operating system."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from server.runtime.heap import GlibcHeap, HeapTrimmer

MIB = 1 << 20

heap = GlibcHeap()
pytestmark = pytest.mark.skipif(not heap.available, reason="needs glibc >= 2.33 (mallinfo2, malloc_trim)")


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def fragment_the_heap(total: int) -> list[bytes]:
    """Allocate `total` bytes in 2 KiB blocks and free 15 of every 16: freed memory malloc keeps (the live
    blocks pin it between them, so the heap's top cannot shrink by itself)."""
    blocks = [bytes(2048) for _ in range(total // 2048)]
    return blocks[::16]


def test_a_fragmented_heap_is_trimmed_and_rss_comes_down() -> None:
    pinned = fragment_the_heap(256 * MIB)
    freed = heap.state().free_bytes
    assert freed >= 128 * MIB  # what glibc keeps for reuse
    before = rss_bytes()
    trimmer = HeapTrimmer(heap, min_free_bytes=32 * MIB)
    assert trimmer.trim_if_worthwhile()
    assert trimmer.trims == 1
    assert before - rss_bytes() >= 64 * MIB, ((before - rss_bytes()) // MIB, freed // MIB)
    assert len(pinned) > 0


def test_a_heap_with_little_free_memory_is_left_alone() -> None:
    trimmer = HeapTrimmer(heap, min_free_bytes=1 << 40)
    assert not trimmer.trim_if_worthwhile()
    assert trimmer.trims == 0


def test_the_trimmer_thread_trims_on_its_own_and_stops() -> None:
    pinned = fragment_the_heap(128 * MIB)
    trimmer = HeapTrimmer(heap, min_free_bytes=32 * MIB, interval_s=0.01)
    trimmer.start()
    assert trimmer.running
    deadline = time.monotonic() + 5
    while trimmer.trims == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    trimmer.stop()
    assert trimmer.trims >= 1
    assert not trimmer.running
    assert len(pinned) > 0
