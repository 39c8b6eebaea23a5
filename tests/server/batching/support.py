"""Test doubles for the batching tests: a gated fake runner, an observer, and tensor helpers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from server.errors import InferenceFailedError
from server.runtime.runner import RunResult, RunTimings

RUNNER_TIMINGS = RunTimings(queue_ns=1, input_ns=2, infer_ns=3, output_ns=4)


def rows(*values: float, width: int = 3) -> npt.NDArray[np.float32]:
    """One row per value, each filled with that value, so requests stay recognisable after a merge."""
    return np.array([[value] * width for value in values], dtype=np.float32).reshape(len(values), width)


class FakeRunner:
    """Computes y = 2x; records every call; holds calls on `gate` until a test opens it."""

    def __init__(self, *, held: bool = False) -> None:
        self.gate = asyncio.Event()
        if not held:
            self.gate.set()
        self.calls: list[dict[str, npt.NDArray[Any]]] = []
        self.output_names: list[tuple[str, ...]] = []
        self.failures: dict[int, BaseException] = {}
        """Call index -> the exception that call raises (after the gate)."""
        self.poison: float | None = None
        """A value that fails any call whose input holds it, as bad data fails a real model's whole batch."""
        self.active = 0

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        return [call["x"].shape for call in self.calls]

    @property
    def batch_rows(self) -> list[int]:
        return [call["x"].shape[0] for call in self.calls]

    def seen(self, value: float) -> bool:
        """Whether any call received a row holding `value`."""
        return any(bool(np.any(call["x"] == value)) for call in self.calls)

    async def run(self, inputs: Mapping[str, npt.NDArray[Any]], output_names: Sequence[str]) -> RunResult:
        index = len(self.calls)
        self.calls.append(dict(inputs))
        self.output_names.append(tuple(output_names))
        self.active += 1
        try:
            await self.gate.wait()
        finally:
            self.active -= 1
        if index in self.failures:
            raise self.failures[index]
        if self.poison is not None and bool(np.any(inputs["x"] == self.poison)):
            raise InferenceFailedError(f"model m:1 failed in onnxruntime: row holds {self.poison}")
        return RunResult(outputs={"y": inputs["x"] * 2}, timings=RUNNER_TIMINGS)

    def close(self) -> None:
        pass


class Observer:
    """The batcher's execution observer: records (rows, timings) and the merged outputs of every execution."""

    def __init__(self) -> None:
        self.executions: list[tuple[int, RunTimings]] = []
        self.outputs: list[dict[str, npt.NDArray[Any]]] = []

    def __call__(
        self,
        batch_rows: int,
        timings: RunTimings,
        outputs: Mapping[str, npt.NDArray[Any]],
        inputs: Mapping[str, npt.NDArray[Any]],
    ) -> None:
        self.executions.append((batch_rows, timings))
        self.outputs.append(dict(outputs))

    @property
    def rows(self) -> list[int]:
        return [batch_rows for batch_rows, _ in self.executions]


async def until(condition: Callable[[], bool], timeout_s: float = 1.0) -> None:
    """Let the loop run until `condition()` holds; fail the test if it does not within `timeout_s`."""
    async with asyncio.timeout(timeout_s):
        while True:
            if condition():
                return
            await asyncio.sleep(0)
