"""A flood of calls from a process of its own: `python -m tests.support.flood ADDRESS CALLERS FILE [stream]`.

FILE holds one serialized ModelInferRequest. CALLERS coroutines each send it, wait for the answer and
send it again at once, until the process is terminated; every 0.2 s a JSON line on stdout says how
many answers of each status code came back so far. With `stream`, each caller opens one
ModelStreamInfer stream instead and keeps eight requests in flight on it (counted as "OK" and
"error_message"). A separate process, so that the flood's client
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

from oip.v1 import grpc_service_pb2 as pb

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"
MODEL_STREAM_INFER = "/inference.GRPCInferenceService/ModelStreamInfer"
STREAM_DEPTH = 8


async def flood(address: str, callers: int, request: bytes, streamed: bool = False) -> None:
    counts: Counter[str] = Counter()
    async with grpc.aio.insecure_channel(address) as channel:
        infer = channel.unary_unary(MODEL_INFER)
        open_stream = channel.stream_stream(MODEL_STREAM_INFER)

        async def unary_caller() -> None:
            while True:
                try:
                    await infer(request, timeout=60)
                    counts["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    counts[error.code().name] += 1

        async def stream_caller() -> None:
            stream = open_stream()
            for _ in range(STREAM_DEPTH):
                await stream.write(request)
            while True:
                response = pb.ModelStreamInferResponse.FromString(await stream.read())
                counts["error_message" if response.error_message else "OK"] += 1
                await stream.write(request)

        caller = stream_caller if streamed else unary_caller

        async def report() -> None:
            while True:
                await asyncio.sleep(0.2)
                print(json.dumps(counts), flush=True)

        await asyncio.gather(report(), *(caller() for _ in range(callers)))


class Flood:
    """The flood as a child process; `counts()` reads its latest report."""

    def __init__(self, address: str, callers: int, request_file: Path, streamed: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.flood", address, str(callers), str(request_file)]
            + (["stream"] if streamed else []),
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
        """Kill the process (SIGTERM ends it where it is: calls in flight are never finished or cancelled)."""
        self.process.terminate()
        self.process.communicate(timeout=10)  # reads what is left and closes the pipe


if __name__ == "__main__":
    asyncio.run(flood(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]).read_bytes(), sys.argv[4:] == ["stream"]))
