"""Giving freed heap memory back to the operating system, so that RSS comes down after large requests.

glibc's malloc keeps memory a process freed for reuse: a large request's buffers (grpc's message,
protobuf's copy, numpy arrays, ONNX Runtime's tensors) were freed when it was answered, yet the
server's RSS stayed hundreds of MB above idle, and a container's memory limit counts RSS. A thread
looks every `interval_s` at how much freed memory the heap holds (`mallinfo2`) and, past
`min_free_bytes`, calls `malloc_trim(0)`, which returns free pages from every arena. Looking costs
microseconds and trimming happens only after something large was freed, never per request.

glibc only (Linux): elsewhere, or with a libc without these functions, this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


class _MallInfo2(ctypes.Structure):
    # struct mallinfo2 (glibc >= 2.33): every field is a size_t.
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


@dataclass(frozen=True, slots=True)
class HeapState:
    free_bytes: int
    """Freed memory malloc holds in its arenas (fordblks): what a trim can give back at most."""
    in_use_bytes: int
    """Memory allocated from the arenas and not freed (uordblks), large mmap'ed blocks excluded."""


class GlibcHeap:
    """glibc's mallinfo2 and malloc_trim; `available` is false where they do not exist."""

    def __init__(self) -> None:
        self._mallinfo2: Any = None
        self._malloc_trim: Any = None
        name = ctypes.util.find_library("c")
        try:
            libc = ctypes.CDLL(name)
            mallinfo2, malloc_trim = libc.mallinfo2, libc.malloc_trim
        except (OSError, AttributeError, TypeError):  # not glibc, or older than 2.33
            return
        mallinfo2.restype = _MallInfo2
        mallinfo2.argtypes = []
        malloc_trim.restype = ctypes.c_int
        malloc_trim.argtypes = [ctypes.c_size_t]
        self._mallinfo2, self._malloc_trim = mallinfo2, malloc_trim

    @property
    def available(self) -> bool:
        return self._mallinfo2 is not None

    def state(self) -> HeapState:
        info = self._mallinfo2()
        return HeapState(free_bytes=int(info.fordblks), in_use_bytes=int(info.uordblks))

    def trim(self) -> bool:
        """Return free pages to the operating system; True if any memory was released."""
        return bool(self._malloc_trim(0))


class HeapTrimmer:
    """A daemon thread that trims the heap when it holds more than `min_free_bytes` of freed memory."""

    def __init__(self, heap: GlibcHeap, min_free_bytes: int = 32 << 20, interval_s: float = 2.0) -> None:
        self._heap = heap
        self._min_free_bytes = min_free_bytes
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.trims = 0
        """Trims done so far (for tests and the debug log)."""

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if not self._heap.available or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._watch, name="heap-trim", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def trim_if_worthwhile(self) -> bool:
        """Trim if the heap holds at least `min_free_bytes` of freed memory; True if it trimmed."""
        before = self._heap.state()
        if before.free_bytes < self._min_free_bytes:
            return False
        self._heap.trim()
        self.trims += 1
        log.debug("heap trimmed", extra={"free_bytes": before.free_bytes, "in_use_bytes": before.in_use_bytes})
        return True

    def _watch(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self.trim_if_worthwhile()
