"""A bounded random-protobuf run against a live server: every answer is a deliberate status, never INTERNAL,
UNKNOWN or a logged traceback, and the server still serves afterwards (issue 10's fuzz requirement).

FUZZ_MESSAGES=20000 makes it the long run described in docs/reliability.md.
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import grpc
import numpy as np
import pytest

from oip.codec import DATATYPE_TO_DTYPE
from oip.v1 import grpc_service_pb2 as pb
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.servers import ThreadedServer

MESSAGES = int(os.environ.get("FUZZ_MESSAGES", "300"))
INFER = "/inference.GRPCInferenceService/ModelInfer"
ANSWERS = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND}
DATATYPES = [*DATATYPE_TO_DTYPE, "BF16", "", "X" * 300]
DIMS = [-1, 0, 1, 2, 3, 2**31, 2**62, 2**63 - 1]


def _good() -> bytes:
    return infer_request("m", {"x": np.ones((2, 3), np.float32)}, id="good").SerializeToString()


def _random_request(rng: random.Random) -> bytes:
    request = pb.ModelInferRequest(model_name=rng.choice(["m", "m", "nope", "m\n" * 50]))
    request.model_version = rng.choice(["", "", "1", "2", "x", "9" * 5000])
    for _ in range(rng.randint(0, 3)):
        shape = [rng.choice(DIMS) for _ in range(rng.choice([0, 1, 2, 2, 3, 70]))]
        tensor = request.inputs.add(name=rng.choice(["x", "x", "y", ""]), datatype=rng.choice(DATATYPES), shape=shape)
        if rng.random() < 0.5:
            request.raw_input_contents.append(rng.randbytes(rng.choice([0, 4, 24, 25])))
        else:
            tensor.contents.fp32_contents.extend([rng.random() for _ in range(rng.choice([0, 6]))])
    if rng.random() < 0.2:
        request.outputs.add(name=rng.choice(["y", "z"]))
    return request.SerializeToString()


def _mutated(rng: random.Random, raw: bytes) -> bytes:
    mutated = bytearray(raw)
    for _ in range(rng.randint(1, 4)):
        mutated[rng.randrange(len(mutated))] = rng.randrange(256)
    return bytes(mutated[: rng.randint(len(mutated) // 2, len(mutated))])


def _messages(rng: random.Random, count: int) -> list[bytes]:
    makers = [
        lambda: rng.randbytes(rng.randint(0, 200)),
        lambda: _mutated(rng, _good()),
        lambda: _random_request(rng),
        lambda: _mutated(rng, _random_request(rng)),
    ]
    return [makers[index % len(makers)]() for index in range(count)]


@pytest.mark.timeout(60 + MESSAGES // 20)
def test_random_messages_get_deliberate_answers(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    onnx_models.write_model(tmp_path, "m", onnx_models.scaled(2.0))
    with ThreadedServer(tmp_path) as server, grpc.insecure_channel(server.address) as channel:
        infer = channel.unary_unary(INFER)
        seen: dict[grpc.StatusCode, int] = {}
        for raw in _messages(random.Random(20261130), MESSAGES):
            try:
                infer(raw, timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as error:
                code = error.code()
                assert code in ANSWERS, (code, error.details(), raw[:200])
                assert len(error.details()) < 2048
            seen[code] = seen.get(code, 0) + 1
        answer = pb.ModelInferResponse.FromString(infer(_good(), timeout=10))
    assert answer.id == "good"
    assert seen.keys() == ANSWERS  # the run reached all three answers
    assert not [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
