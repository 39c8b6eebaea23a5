"""NVIDIA's `tritonclient.grpc` against our server: run as `python triton_checks.py HOST:PORT`.

tritonclient's generated stubs and ours both define the protobuf package `inference`, so
they cannot share a process. This script imports only tritonclient and numpy, runs every
check in order (a failure is recorded, the rest still run) and prints one JSON object on
stdout: {check_name: {"ok": bool, "error": str}}.

The checks expect the repository that `test_tritonclient.py` builds: `simple` (versions 1
and 2, max_batch_size 8), `identity_bytes`, `identity_fp16` and the example `fraud`.
"""

from __future__ import annotations

import faulthandler
import json
import queue
import sys
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.grpc import model_config_pb2
from tritonclient.utils import InferenceServerException

#: Seconds for each unary call and for waiting on each callback.
TIMEOUT_S = 10.0
#: Deadline of a whole stream.
STREAM_TIMEOUT_S = 20.0
#: Hard cap on the whole script: dump the stacks to stderr and exit.
WATCHDOG_S = 50.0

Client = grpcclient.InferenceServerClient
Check = Callable[[Client], None]


def _simple_inputs(input0: np.ndarray, input1: np.ndarray) -> list[grpcclient.InferInput]:
    inputs = [
        grpcclient.InferInput("INPUT0", list(input0.shape), "INT32"),
        grpcclient.InferInput("INPUT1", list(input1.shape), "INT32"),
    ]
    inputs[0].set_data_from_numpy(input0)
    inputs[1].set_data_from_numpy(input1)
    return inputs


def _simple_data(seed: int, batch: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(-1000, 1000, size=(batch, 16), dtype=np.int32),
        rng.integers(-1000, 1000, size=(batch, 16), dtype=np.int32),
    )


def _assert_sum_diff(result: grpcclient.InferResult, input0: np.ndarray, input1: np.ndarray) -> None:
    output0, output1 = result.as_numpy("OUTPUT0"), result.as_numpy("OUTPUT1")
    assert output0 is not None and output1 is not None, "missing outputs"
    assert output0.dtype == np.int32 and output0.shape == input0.shape, (output0.dtype, output0.shape)
    np.testing.assert_array_equal(output0, input0 + input1)
    np.testing.assert_array_equal(output1, input0 - input1)


def _identity(client: Client, model: str, data: np.ndarray, datatype: str) -> np.ndarray:
    infer_input = grpcclient.InferInput("INPUT0", list(data.shape), datatype)
    infer_input.set_data_from_numpy(data)
    result = client.infer(
        model, [infer_input], outputs=[grpcclient.InferRequestedOutput("OUTPUT0")], client_timeout=TIMEOUT_S
    )
    output = result.as_numpy("OUTPUT0")
    assert output is not None, "missing OUTPUT0"
    return output


def _status(call: Callable[[], object]) -> str:
    """The status string of the InferenceServerException that `call` raises."""
    try:
        call()
    except InferenceServerException as error:
        return str(error.status())
    raise AssertionError("expected an InferenceServerException")


# ------------------------------------------------------------------ health and metadata


def check_health(client: Client) -> None:
    assert client.is_server_live(client_timeout=TIMEOUT_S) is True
    assert client.is_server_ready(client_timeout=TIMEOUT_S) is True
    assert client.is_model_ready("simple", client_timeout=TIMEOUT_S) is True
    assert client.is_model_ready("simple", "1", client_timeout=TIMEOUT_S) is True
    assert client.is_model_ready("simple", "2", client_timeout=TIMEOUT_S) is True
    assert client.is_model_ready("nope", client_timeout=TIMEOUT_S) is False


def check_server_metadata(client: Client) -> None:
    metadata = client.get_server_metadata(client_timeout=TIMEOUT_S)
    assert metadata.name, "empty server name"
    assert {"model_repository", "model_configuration", "statistics"} <= set(metadata.extensions), metadata.extensions
    as_json = client.get_server_metadata(as_json=True, client_timeout=TIMEOUT_S)
    assert as_json["name"] == metadata.name, as_json


def check_model_metadata(client: Client) -> None:
    metadata = client.get_model_metadata("simple", client_timeout=TIMEOUT_S)
    assert metadata.name == "simple", metadata.name
    assert list(metadata.versions) == ["1", "2"], metadata.versions
    for tensors, names in ((metadata.inputs, ["INPUT0", "INPUT1"]), (metadata.outputs, ["OUTPUT0", "OUTPUT1"])):
        assert [t.name for t in tensors] == names, [t.name for t in tensors]
        assert all(t.datatype == "INT32" and list(t.shape) == [-1, 16] for t in tensors), tensors

    as_json = client.get_model_metadata("simple", as_json=True, client_timeout=TIMEOUT_S)
    assert as_json["versions"] == ["1", "2"], as_json
    first = as_json["inputs"][0]
    # MessageToJson writes int64 as strings.
    assert (first["name"], first["datatype"], first["shape"]) == ("INPUT0", "INT32", ["-1", "16"]), first

    versioned = client.get_model_metadata("simple", "1", client_timeout=TIMEOUT_S)
    assert versioned.name == "simple", versioned


def check_model_config(client: Client) -> None:
    config = client.get_model_config("simple", client_timeout=TIMEOUT_S).config
    assert config.name == "simple", config.name
    assert config.max_batch_size == 8, config.max_batch_size
    assert [i.name for i in config.input] == ["INPUT0", "INPUT1"], config.input
    assert [o.name for o in config.output] == ["OUTPUT0", "OUTPUT1"], config.output
    for tensor in [*config.input, *config.output]:
        assert list(tensor.dims) == [16], (tensor.name, list(tensor.dims))
        assert model_config_pb2.DataType.Name(tensor.data_type) == "TYPE_INT32", (tensor.name, tensor.data_type)

    as_json = client.get_model_config("simple", as_json=True, client_timeout=TIMEOUT_S)["config"]
    assert as_json["max_batch_size"] == 8, as_json
    assert as_json["input"][0]["data_type"] == "TYPE_INT32", as_json["input"]


# ---------------------------------------------------------------------------- inference


def check_infer_simple(client: Client) -> None:
    input0, input1 = _simple_data(seed=1, batch=2)
    outputs = [grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")]
    result = client.infer(
        "simple",
        _simple_inputs(input0, input1),
        model_version="1",
        outputs=outputs,
        request_id="simple-1",
        client_timeout=TIMEOUT_S,
    )
    _assert_sum_diff(result, input0, input1)
    response = result.get_response()
    assert (response.model_name, response.model_version, response.id) == ("simple", "1", "simple-1"), response

    # No version: the server picks one; no requested outputs: all of them.
    result = client.infer("simple", _simple_inputs(input0, input1), client_timeout=TIMEOUT_S)
    _assert_sum_diff(result, input0, input1)
    assert result.get_response().model_version in ("1", "2"), result.get_response().model_version

    # Only OUTPUT1 requested: only OUTPUT1 comes back.
    result = client.infer(
        "simple",
        _simple_inputs(input0, input1),
        model_version="2",
        outputs=[grpcclient.InferRequestedOutput("OUTPUT1")],
        client_timeout=TIMEOUT_S,
    )
    assert [o.name for o in result.get_response().outputs] == ["OUTPUT1"], result.get_response().outputs
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), input0 - input1)


def check_infer_bytes(client: Client) -> None:
    data = np.array([[b"a", b"bc", b""], [b"nul\x00inside", "é €".encode(), b"x" * 1000]], dtype=np.object_)
    output = _identity(client, "identity_bytes", data, "BYTES")
    assert output.shape == (2, 3), output.shape
    assert output.tolist() == data.tolist(), output


def check_infer_fp16(client: Client) -> None:
    data = np.random.default_rng(2).standard_normal((4, 3)).astype(np.float16)
    output = _identity(client, "identity_fp16", data, "FP16")
    assert output.dtype == np.float16, output.dtype
    np.testing.assert_array_equal(output, data)


def check_infer_fraud(client: Client) -> None:
    features = np.random.default_rng(3).standard_normal((4, 12)).astype(np.float32)
    for version in ("1", "2"):
        infer_input = grpcclient.InferInput("features", [4, 12], "FP32")
        infer_input.set_data_from_numpy(features)
        result = client.infer("fraud", [infer_input], model_version=version, client_timeout=TIMEOUT_S)
        scores, label = result.as_numpy("scores"), result.as_numpy("label")
        assert scores is not None and label is not None, "missing outputs"
        assert scores.dtype == np.float32 and scores.shape == (4, 2), (scores.dtype, scores.shape)
        np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
        assert label.dtype == np.int64 and label.shape == (4,), (label.dtype, label.shape)
        np.testing.assert_array_equal(label, scores.argmax(axis=1))


def check_async_infer(client: Client) -> None:
    done: queue.Queue[tuple[int, Any, Any]] = queue.Queue()

    def on_done(index: int, result: Any, error: Any) -> None:
        done.put((index, result, error))

    sent = {index: _simple_data(seed=100 + index, batch=1 + index % 3) for index in range(8)}
    for index, (input0, input1) in sent.items():
        client.async_infer(
            "simple",
            _simple_inputs(input0, input1),
            partial(on_done, index),
            request_id=f"async-{index}",
            client_timeout=TIMEOUT_S,
        )
    received = set()
    for _ in sent:
        index, result, error = done.get(timeout=TIMEOUT_S)
        assert error is None, f"request {index}: {error}"
        assert result.get_response().id == f"async-{index}", result.get_response().id
        _assert_sum_diff(result, *sent[index])
        received.add(index)
    assert received == set(sent), received


def check_stream_infer(client: Client) -> None:
    done: queue.Queue[tuple[Any, Any]] = queue.Queue()
    client.start_stream(lambda result, error: done.put((result, error)), stream_timeout=STREAM_TIMEOUT_S)
    try:
        sent = {f"stream-{index}": _simple_data(seed=200 + index, batch=1 + index % 2) for index in range(10)}
        for position, (request_id, (input0, input1)) in enumerate(sent.items()):
            client.async_stream_infer("simple", _simple_inputs(input0, input1), request_id=request_id)
            if position == 4:
                wrong, right = (grpcclient.InferInput(name, [1, 16], "INT32") for name in ("WRONG", "INPUT1"))
                wrong.set_data_from_numpy(input0[:1])
                right.set_data_from_numpy(input1[:1])
                client.async_stream_infer("simple", [wrong, right], request_id="stream-bad")
        results, errors = {}, []
        for _ in range(len(sent) + 1):
            result, error = done.get(timeout=TIMEOUT_S)
            if error is not None:
                errors.append(error)
            else:
                results[result.get_response().id] = result
    finally:
        client.stop_stream(cancel_requests=True)
    assert len(errors) == 1, [str(e) for e in errors]
    assert "INVALID_ARGUMENT" in str(errors[0]) or "WRONG" in str(errors[0]), str(errors[0])
    assert sorted(results) == sorted(sent), sorted(results)
    for request_id, result in results.items():
        _assert_sum_diff(result, *sent[request_id])


def check_errors(client: Client) -> None:
    input0, input1 = _simple_data(seed=4)
    unknown = _status(lambda: client.infer("nope", _simple_inputs(input0, input1), client_timeout=TIMEOUT_S))
    assert unknown == "StatusCode.NOT_FOUND", unknown
    unknown = _status(lambda: client.get_model_metadata("nope", client_timeout=TIMEOUT_S))
    assert unknown == "StatusCode.NOT_FOUND", unknown

    short0, short1 = input0[:, :15].copy(), input1[:, :15].copy()
    shape = _status(lambda: client.infer("simple", _simple_inputs(short0, short1), client_timeout=TIMEOUT_S))
    assert shape == "StatusCode.INVALID_ARGUMENT", shape

    as_float = grpcclient.InferInput("INPUT0", [1, 16], "FP32")
    as_float.set_data_from_numpy(input0.astype(np.float32))
    inputs = [as_float, _simple_inputs(input0, input1)[1]]
    datatype = _status(lambda: client.infer("simple", inputs, client_timeout=TIMEOUT_S))
    assert datatype == "StatusCode.INVALID_ARGUMENT", datatype

    done: queue.Queue[Any] = queue.Queue()
    client.async_infer(
        "nope",
        _simple_inputs(input0, input1),
        lambda result, error: done.put((result, error)),
        client_timeout=TIMEOUT_S,
    )
    result, error = done.get(timeout=TIMEOUT_S)
    assert result is None and error is not None, (result, error)
    assert error.status() == "StatusCode.NOT_FOUND", error.status()


# --------------------------------------------------------- statistics and repository


def check_statistics(client: Client) -> None:
    stats = client.get_inference_statistics("simple", client_timeout=TIMEOUT_S)
    by_version = {s.version: s for s in stats.model_stats}
    assert sorted(by_version) == ["1", "2"], sorted(by_version)
    assert all(s.name == "simple" for s in stats.model_stats), stats
    version1 = by_version["1"]
    assert version1.inference_count > 0, version1
    assert version1.execution_count > 0, version1
    assert version1.inference_stats.success.count > 0, version1.inference_stats
    assert sum(s.inference_count for s in stats.model_stats) >= 2 + 8, stats  # at least the infer + async checks

    one = client.get_inference_statistics("simple", "1", client_timeout=TIMEOUT_S)
    assert [s.version for s in one.model_stats] == ["1"], one
    as_json = client.get_inference_statistics("simple", as_json=True, client_timeout=TIMEOUT_S)
    assert len(as_json["model_stats"]) == 2, as_json


def check_repository(client: Client) -> None:
    index = client.get_model_repository_index(client_timeout=TIMEOUT_S)
    states = {(m.name, m.version): m.state for m in index.models}
    assert states.get(("simple", "1")) == "READY", states
    assert states.get(("simple", "2")) == "READY", states
    assert {"identity_bytes", "identity_fp16", "fraud"} <= {name for name, _ in states}, states

    client.unload_model("identity_fp16", client_timeout=TIMEOUT_S)
    assert client.is_model_ready("identity_fp16", client_timeout=TIMEOUT_S) is False
    unloaded = client.get_model_repository_index(client_timeout=TIMEOUT_S)
    assert all(m.state != "READY" for m in unloaded.models if m.name == "identity_fp16"), unloaded

    client.load_model("identity_fp16", client_timeout=TIMEOUT_S)
    assert client.is_model_ready("identity_fp16", client_timeout=TIMEOUT_S) is True
    data = np.ones((1, 3), dtype=np.float16)
    np.testing.assert_array_equal(_identity(client, "identity_fp16", data, "FP16"), data)


#: In order: statistics after the inference checks, the repository (which unloads) last.
CHECKS: tuple[tuple[str, Check], ...] = (
    ("health", check_health),
    ("server_metadata", check_server_metadata),
    ("model_metadata", check_model_metadata),
    ("model_config", check_model_config),
    ("infer_simple", check_infer_simple),
    ("infer_bytes", check_infer_bytes),
    ("infer_fp16", check_infer_fp16),
    ("infer_fraud", check_infer_fraud),
    ("async_infer", check_async_infer),
    ("stream_infer", check_stream_infer),
    ("errors", check_errors),
    ("statistics", check_statistics),
    ("repository", check_repository),
)


def run_checks(address: str) -> dict[str, dict[str, Any]]:
    report: dict[str, dict[str, Any]] = {}
    for name, check in CHECKS:
        try:
            with grpcclient.InferenceServerClient(address) as client:
                check(client)
        except Exception as error:
            report[name] = {"ok": False, "error": "".join(traceback.format_exception(error))}
        else:
            report[name] = {"ok": True, "error": ""}
    return report


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(f"usage: {argv[0]} HOST:PORT", file=sys.stderr)
        return 2
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    print(json.dumps(run_checks(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
