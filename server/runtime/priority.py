"""Lowering the CPU priority of the threads that compute, so that the event loop is never starved.

The event loop is the front door of every model: it accepts, decodes, admits, refuses and answers
every call. When compute threads outnumber the cores (a model with many instances, each session with
its own intra-op threads), the scheduler shares the cores among them all and the loop got a sliver:
with eight busy instances of one model on two cores it handled about 170 calls a second, so every
other model's calls queued behind that model's callers for over a second. A compute thread a few
nice steps lower still gets every cycle the loop does not want, and the loop runs as soon as it has work.

Linux only: there a thread's nice value is its own (setpriority with a thread id), and threads inherit
it from the thread that creates them, so ONNX Runtime's intra-op threads, created while a session
loads on a lowered load thread, are lowered too. Elsewhere this does nothing.
"""

from __future__ import annotations

import logging
import os
import sys
import threading

log = logging.getLogger(__name__)

MAX_NICE = 19


def lower_this_thread(steps: int) -> None:
    """Lower the calling thread's priority by `steps` nice steps (0: leave it). Never raises."""
    if steps <= 0 or sys.platform != "linux":
        # Elsewhere PRIO_PROCESS with a thread id could name another process: leave priorities alone.
        return
    thread = threading.get_native_id()
    try:
        current = os.getpriority(os.PRIO_PROCESS, thread)
        os.setpriority(os.PRIO_PROCESS, thread, min(MAX_NICE, current + steps))
    except OSError as error:  # a sandbox may forbid it; priority is a refinement, not a requirement
        log.debug("could not lower a compute thread's priority", extra={"error": str(error)})
