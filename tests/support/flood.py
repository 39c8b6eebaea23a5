"""A flood of ModelInfer calls from a process of its own: `python -m tests.support.flood ADDRESS CALLERS FILE`.

FILE holds one serialized ModelInferRequest. CALLERS coroutines each send it, wait for the answer and
send it again at once, until the process is terminated; every 0.2 s a JSON line on stdout says how
many answers of each status code came back so far. A separate process, so that the flood's client
work never shares a GIL or an event loop with the client a test measures.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import grpc

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


async def flood(address: str, callers: int, request: bytes) -> None:
    counts: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(address) as channel:
        infer = channel.unary_unary(MODEL_INFER)

        async def caller() -> None:
            while True:
                try:
                    await infer(request, timeout=60)
                    counts["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    counts[error.code().name] += 1

        async def report() -> None:
            while True:
                await asyncio.sleep(0.2)
                print(json.dumps(counts), flush=True)

        await asyncio.gather(report(), *(caller() for _ in range(callers)))


class Flood:
    """The flood as a child process; `counts()` reads its latest report."""

    def __init__(self, address: str, callers: int, request_file: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.flood", address, str(callers), str(request_file)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=subprocess.PIPE,
            text=True,
        )

    def counts(self) -> dict[str, int]:
        """The latest report (blocks for the next line, at most 0.2 s away)."""
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        return dict(json.loads(line)) if line else {}

    def stop(self) -> None:
        self.process.terminate()
        self.process.communicate(timeout=10)  # reads what is left and closes the pipe


if __name__ == "__main__":
    asyncio.run(flood(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]).read_bytes()))
