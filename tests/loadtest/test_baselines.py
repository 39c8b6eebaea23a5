"""The reference points: the gRPC floor server, canned responses, the ONNX Runtime ceiling, model files."""

from __future__ import annotations

import socket
from pathlib import Path

import grpc
import numpy as np
import pytest

from loadtest.baselines import FloorServer, canned_response, measure_onnxruntime, model_file
from loadtest.errors import LoadTestError
from loadtest.inputs import encode_request
from loadtest.target import INFER_METHOD
from oip.v1 import grpc_service_pb2 as pb
from tests.support.onnx_models import fixed_shape, identity, write_model
from tests.support.servers import ThreadedServer

PAYLOAD = encode_request("identity", "", {"INPUT0": np.ones((1, 3), np.float32)})


def _raw_call(address: str, method: str, payload: bytes) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        return call(payload, timeout=5)


@pytest.fixture
def identity_repo(tmp_path: Path) -> Path:
    write_model(tmp_path, "identity", identity("FP32"))
    return tmp_path


def test_floor_server_returns_the_canned_bytes_and_answers_health() -> None:
    canned = pb.ModelInferResponse(model_name="identity", id="canned").SerializeToString()
    with FloorServer(canned) as floor:
        assert floor.address.startswith("127.0.0.1:")
        assert _raw_call(floor.address, INFER_METHOD, PAYLOAD) == canned
        live = _raw_call(floor.address, "/inference.GRPCInferenceService/ServerLive", b"")
        ready = _raw_call(floor.address, "/inference.GRPCInferenceService/ServerReady", b"")
    assert pb.ServerLiveResponse.FromString(live).live
    assert pb.ServerReadyResponse.FromString(ready).ready
    with pytest.raises(LoadTestError, match="not running"):
        _ = floor.address


def test_floor_server_without_uvloop() -> None:
    with FloorServer(b"\x0a\x01x", use_uvloop=False) as floor:
        assert _raw_call(floor.address, INFER_METHOD, b"") == b"\x0a\x01x"


def test_canned_response_is_the_real_servers_answer(identity_repo: Path) -> None:
    with ThreadedServer(identity_repo) as server:
        raw = canned_response(server.address, PAYLOAD)
    response = pb.ModelInferResponse.FromString(raw)
    assert response.model_name == "identity"
    assert [output.name for output in response.outputs] == ["OUTPUT0"]
    assert np.frombuffer(response.raw_output_contents[0], np.float32).tolist() == [1.0, 1.0, 1.0]


def test_canned_response_reports_server_errors(identity_repo: Path) -> None:
    payload = encode_request("missing", "", {"INPUT0": np.ones((1, 3), np.float32)})
    with ThreadedServer(identity_repo) as server, pytest.raises(LoadTestError, match="NOT_FOUND"):
        canned_response(server.address, payload)


def test_canned_response_to_a_closed_port() -> None:
    with socket.socket() as sock:  # bound but not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        with pytest.raises(LoadTestError, match="UNAVAILABLE"):
            canned_response(f"127.0.0.1:{port}", PAYLOAD, timeout_s=5)


def test_measure_onnxruntime_rates(identity_repo: Path) -> None:
    path = model_file(identity_repo, "identity", "")
    rates = measure_onnxruntime(path, {"INPUT0": np.ones((1, 3), np.float32)}, [1, 4], duration_s=0.3)
    assert sorted(rates) == [1, 4]
    assert all(rate > 0 for rate in rates.values())


def test_measure_onnxruntime_bytes_inputs(tmp_path: Path) -> None:
    write_model(tmp_path, "strings", identity("BYTES"))
    inputs = {"INPUT0": np.array([[b"a", b"b", b"c"]], dtype=np.object_)}
    rates = measure_onnxruntime(model_file(tmp_path, "strings", "1"), inputs, [2], duration_s=0.05)
    assert list(rates) == [2] and rates[2] > 0


def test_measure_onnxruntime_fixed_shape_measures_only_the_given_inputs(tmp_path: Path) -> None:
    write_model(tmp_path, "fixed", fixed_shape())
    inputs = {"x": np.ones((2, 3), np.float32)}
    rates = measure_onnxruntime(model_file(tmp_path, "fixed", ""), inputs, [1, 8], duration_s=0.05)
    assert list(rates) == [1] and rates[1] > 0


def test_measure_onnxruntime_errors(identity_repo: Path, tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match="does not exist"):
        measure_onnxruntime(tmp_path / "nope.onnx", {}, [1])
    path = model_file(identity_repo, "identity", "")
    with pytest.raises(LoadTestError, match="onnxruntime failed"):
        measure_onnxruntime(path, {"WRONG": np.ones((1, 3), np.float32)}, [1], duration_s=0.01)


def test_model_file_picks_the_highest_version(tmp_path: Path) -> None:
    write_model(tmp_path, "identity", identity("FP32"), versions=(1, 2, 10))
    (tmp_path / "identity" / "notes").mkdir()
    assert model_file(tmp_path, "identity", "") == tmp_path / "identity" / "10" / "model.onnx"
    assert model_file(tmp_path, "identity", "2") == tmp_path / "identity" / "2" / "model.onnx"


def test_model_file_honours_model_filename(tmp_path: Path) -> None:
    model_dir = write_model(tmp_path, "custom", identity("FP32"), config='model_filename = "net.onnx"\n')
    (model_dir / "1" / "model.onnx").rename(model_dir / "1" / "net.onnx")
    assert model_file(tmp_path, "custom", "") == model_dir / "1" / "net.onnx"


def test_model_file_errors(tmp_path: Path) -> None:
    with pytest.raises(LoadTestError, match="no directory"):
        model_file(tmp_path, "absent", "")
    (tmp_path / "empty").mkdir()
    with pytest.raises(LoadTestError, match="no numeric version"):
        model_file(tmp_path, "empty", "")
    write_model(tmp_path, "identity", identity("FP32"))
    with pytest.raises(LoadTestError, match="does not exist"):
        model_file(tmp_path, "identity", "7")
    (tmp_path / "identity" / "config.toml").write_text("model_filename = [")
    with pytest.raises(LoadTestError, match="cannot read"):
        model_file(tmp_path, "identity", "1")


def test_floor_server_that_fails_to_start_is_reported() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        floor = FloorServer(b"", port=taken.getsockname()[1])  # the port is in use, so the server cannot bind it
        with pytest.raises(LoadTestError, match=r"(?s)did not start \(exited with \d+\).*could not bind"):
            floor.start()
    with pytest.raises(LoadTestError, match="not running"):
        _ = floor.address
