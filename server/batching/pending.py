"""One queued request: its tensors, its future, and when it must have started by."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import numpy.typing as npt

from server.runtime.runner import RunResult


@dataclass(eq=False, slots=True)
class PendingRequest:
    """A request waiting for (or in) an execution. Identity-compared: each one is unique."""

    inputs: dict[str, npt.NDArray[Any]]
    output_names: tuple[str, ...]
    batch_size: int
    """Rows this request contributes to a merged batch (1 for models without a batch dimension)."""
    priority: int
    """1 is served first; larger numbers wait for smaller ones."""
    enqueued_ns: int
    deadline: float | None
    """time.monotonic() by which execution must have started, or None."""
    future: asyncio.Future[RunResult]
    merge_key: tuple[Any, ...] = field(default=())
    """Requests with equal keys can share one execution (same inputs, dtypes, non-batch dims, outputs)."""
    trace: object | None = None
    """Opaque to the batcher: handed to the traced-batch observer with the others of its execution."""

    @property
    def done(self) -> bool:
        return self.future.done()


def merge_key(inputs: dict[str, npt.NDArray[Any]], output_names: tuple[str, ...]) -> tuple[Any, ...]:
    """What must match for requests to be concatenated along the batch dimension."""
    parts = tuple((name, array.dtype.str, array.shape[1:]) for name, array in sorted(inputs.items()))
    return (*parts, output_names)
