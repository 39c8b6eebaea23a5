"""Malformed input against a real server: a precise status, a short message, and no traceback in the log.

Issue 10, findings 5 (undecodable protobuf), 6 (shapes numpy cannot build), 7 (long names) and 15 (text logs).
Each test failed on the code before: UNKNOWN or INTERNAL with a logged traceback, INTERNAL for ENAMETOOLONG,
RESOURCE_EXHAUSTED "metadata size exceeds limit" for a message echoing a 100 kB name.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import grpc
import numpy as np
import pytest

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.telemetry.logging import TextFormatter
from tests.integration.helpers import infer_request
from tests.support import onnx_models
from tests.support.servers import ThreadedServer

MODEL = "m"
INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
#: Field 1 (model_name) declaring a length far beyond the message's end.
GARBAGE = b"\x0a\xff\xff\xff\xff\x0f"
#: Longest status message a test accepts: far below the 8 kB metadata limit.
SHORT = 1024
HUGE = 100_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ThreadedServer]:
    root = tmp_path_factory.mktemp("repository")
    onnx_models.write_model(root, MODEL, onnx_models.scaled(1.0))
    with ThreadedServer(root) as server:
        yield server


@pytest.fixture
def channel(server: ThreadedServer, caplog: pytest.LogCaptureFixture) -> Iterator[grpc.Channel]:
    """A channel to the server; after the test, no log record of the server carried a traceback."""
    caplog.set_level(logging.INFO)
    with grpc.insecure_channel(server.address) as channel:
        yield channel
    tracebacks = [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not tracebacks


def _good() -> pb.ModelInferRequest:
    return infer_request(MODEL, {"x": np.ones((1, 2), np.float32)}, id="good")


def _refused(call: grpc.UnaryUnaryMultiCallable, request: object) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as raised:
        call(request, timeout=10)
    return raised.value


def _tensor(name: str, datatype: str, shape: list[int]) -> pb.ModelInferRequest.InferInputTensor:
    return pb.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=shape)


# ------------------------------------------------------------ finding 5: undecodable protobuf


def test_an_undecodable_request_is_invalid_argument_and_its_log_line_rate_limited(
    channel: grpc.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    infer = channel.unary_unary(INFER)  # no serializers: bytes go out as they are
    for _ in range(20):
        error = _refused(infer, GARBAGE)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "is not a valid ModelInferRequest protobuf message" in error.details()
    lines = [r for r in caplog.records if getattr(r, "event", "") == "request_undecodable"]
    assert len(lines) <= 1  # twenty bad requests, at most one line per 10 s
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    assert stub.ModelInfer(_good(), timeout=10).id == "good"


def test_an_undecodable_message_in_a_stream_fails_only_itself(channel: grpc.Channel) -> None:
    stream = channel.stream_stream(STREAM, response_deserializer=pb.ModelStreamInferResponse.FromString)
    responses = list(stream(iter([GARBAGE, _good().SerializeToString()]), timeout=10))
    assert len(responses) == 2
    failed = [r.error_message for r in responses if r.error_message]
    assert len(failed) == 1
    assert failed[0].startswith("INVALID_ARGUMENT: ")
    assert "is not a valid ModelInferRequest protobuf message" in failed[0]
    assert [r.infer_response.id for r in responses if not r.error_message] == ["good"]


# ------------------------------------------------------------ finding 6: shapes


@pytest.mark.parametrize("model", [MODEL, "no-such-model"])  # decoding runs before routing
@pytest.mark.parametrize(
    ("datatype", "shape", "raw", "expected"),
    [
        ("FP32", [0, 2**62, 2**62], b"", "at most 1099511627776 elements"),
        ("FP32", [1] * 65, b"\x00" * 4, "65 dimensions; at most 64"),
        ("BYTES", [0, 2**62, 2**62], b"", "at most 1099511627776 elements"),
        ("FP32", [0, 2**62, 2**62], None, "at most 1099511627776 elements"),  # typed contents
        ("FP32", [1] * 1000, None, "1000 dimensions; at most 64"),
        ("FP32", [-1, 2], None, "negative dimension"),
    ],
)
def test_shapes_numpy_cannot_build_are_invalid_argument(
    channel: grpc.Channel, model: str, datatype: str, shape: list[int], raw: bytes | None, expected: str
) -> None:
    request = pb.ModelInferRequest(model_name=model, inputs=[_tensor("x", datatype, shape)])
    if raw is not None:
        request.raw_input_contents.append(raw)
    error = _refused(pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer, request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("input 'x': ")
    assert expected in error.details()
    assert len(error.details()) < SHORT


# ------------------------------------------------------------ finding 7: names


@pytest.mark.parametrize("name", ["a" * 256, "é" * 200, "n" * HUGE, "nul\x00name"])
def test_loading_or_unloading_a_name_no_directory_can_have_is_invalid_argument(
    channel: grpc.Channel, name: str
) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    for call, request in (
        (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name=name)),
        (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name=name)),
    ):
        error = _refused(call, request)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
        assert "model name" in error.details()
        assert len(error.details()) < SHORT


def _with_long_fields(**fields: str) -> pb.ModelInferRequest:
    request = _good()
    for key, value in fields.items():
        setattr(request, key, value)
    return request


def test_messages_echo_at_most_a_prefix_of_long_client_text(channel: grpc.Channel) -> None:
    stub = pb_grpc.GRPCInferenceServiceStub(channel)
    long = "n" * HUGE
    wrong_input = infer_request(MODEL, {long: np.ones((1, 2), np.float32)})
    wrong_output = _good()
    wrong_output.outputs.add(name=long)
    wrong_type = _good()
    wrong_type.inputs[0].datatype = long
    cases = [
        (stub.ModelInfer, _with_long_fields(model_name=long), grpc.StatusCode.NOT_FOUND),
        # The longest id accepted (1 KiB; longer ones are INVALID_ARGUMENT, see test_overload.py).
        (stub.ModelInfer, _with_long_fields(model_name=long, id="i" * 1024), grpc.StatusCode.NOT_FOUND),
        (stub.ModelInfer, _with_long_fields(model_version=long), grpc.StatusCode.NOT_FOUND),
        (stub.ModelMetadata, pb.ModelMetadataRequest(name=long), grpc.StatusCode.NOT_FOUND),
        (stub.ModelInfer, wrong_input, grpc.StatusCode.INVALID_ARGUMENT),
        (stub.ModelInfer, wrong_output, grpc.StatusCode.INVALID_ARGUMENT),
        (stub.ModelInfer, wrong_type, grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for call, request, code in cases:
        error = _refused(call, request)
        assert error.code() == code, error.details()
        assert len(error.details()) < SHORT
        assert "nnnn…" in error.details()  # a prefix of the name, marked as cut


def test_load_parameters_are_named_briefly(channel: grpc.Channel) -> None:
    request = pb.RepositoryModelLoadRequest(model_name=MODEL)
    for index in range(50):
        request.parameters[f"{index:02d}" + "p" * HUGE].string_param = "x"
    error = _refused(pb_grpc.GRPCInferenceServiceStub(channel).RepositoryModelLoad, request)
    assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "and 42 more" in error.details()
    assert len(error.details()) < 2 * SHORT


# ------------------------------------------------------------ finding 15: text logs


def test_a_model_name_with_a_newline_makes_one_text_log_line(channel: grpc.Channel) -> None:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(TextFormatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        forged = "fraud\nINFO server.requests: forged"
        error = _refused(pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer, _with_long_fields(model_name=forged))
    finally:
        root.removeHandler(handler)
    assert error.code() == grpc.StatusCode.NOT_FOUND
    lines = [line for line in output.getvalue().splitlines() if "server.requests" in line]
    assert len(lines) == 1
    assert lines[0].startswith("INFO server.requests: request failed ")
    assert 'model="fraud\\nINFO server.requests: forged"' in lines[0]
