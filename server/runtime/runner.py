"""The Runner interface: what the core needs from a model runtime."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class RunTimings:
    """Where one execution spent its time, in nanoseconds."""

    queue_ns: int
    """Waiting for a worker thread."""
    input_ns: int
    """Preparing inputs for the runtime."""
    infer_ns: int
    """Inside the runtime."""
    output_ns: int
    """Converting the runtime's outputs."""


@dataclass(frozen=True, slots=True)
class RunResult:
    outputs: dict[str, npt.NDArray[Any]]
    timings: RunTimings


class Runner(Protocol):
    """Executes one loaded model version. Implementations never block the event loop."""

    async def run(self, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> RunResult:
        """Run the model on already validated inputs and return the named outputs."""
        ...

    def close(self) -> None:
        """Release the runtime's resources; called once no request uses the runner."""
        ...
