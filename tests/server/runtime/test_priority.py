"""server.runtime.priority: compute threads lower their own priority, nobody else's."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from server.runtime.priority import MAX_NICE, lower_this_thread

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice values are Linux's")


def nice_after(steps: int) -> tuple[int, int]:
    """(the nice value of a thread that lowered itself by `steps`, its value before)."""
    seen: list[int] = []

    def lower() -> None:
        thread = threading.get_native_id()
        seen.append(os.getpriority(os.PRIO_PROCESS, thread))
        lower_this_thread(steps)
        seen.append(os.getpriority(os.PRIO_PROCESS, thread))

    worker = threading.Thread(target=lower)
    worker.start()
    worker.join()
    return seen[1], seen[0]


def test_a_thread_lowers_only_itself() -> None:
    main_before = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    after, before = nice_after(3)
    assert after == min(MAX_NICE, before + 3)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == main_before


def test_zero_steps_leave_the_priority_and_too_many_stop_at_the_lowest() -> None:
    after, before = nice_after(0)
    assert after == before
    after, _ = nice_after(100)
    assert after == MAX_NICE
