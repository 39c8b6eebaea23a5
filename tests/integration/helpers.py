"""Request builders and a repository of test models for the integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from oip.codec import array_to_contents, array_to_raw, datatype_for, dtype_for
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from tests.support import onnx_models
from tests.support.servers import running_app

DATATYPES = (
    "BOOL",
    "UINT8",
    "UINT16",
    "UINT32",
    "UINT64",
    "INT8",
    "INT16",
    "INT32",
    "INT64",
    "FP16",
    "FP32",
    "FP64",
    "BYTES",
)


def build_test_repository(root: Path) -> Path:
    """One identity model per datatype plus models with special behaviour."""
    for datatype in DATATYPES:
        onnx_models.write_model(root, f"identity_{datatype.lower()}", onnx_models.identity(datatype))
    onnx_models.write_model(root, "simple", onnx_models.add_sub(), versions=(1, 2), config="max_batch_size = 8\n")
    onnx_models.write_model(root, "fixed", onnx_models.fixed_shape())
    onnx_models.write_model(root, "reshape5", onnx_models.reshape_by_five())
    onnx_models.write_model(root, "big", onnx_models.identity("UINT8", ("batch", "n")), config="max_batch_size = 1\n")
    return root


def sample(datatype: str, shape: tuple[int, ...] = (2, 3)) -> npt.NDArray[Any]:
    """Deterministic data of a datatype, including edge values."""
    count = int(np.prod(shape))
    if datatype == "BYTES":
        items = [f"item-{i}-é".encode() for i in range(count)]
        items[0] = b""
        array = np.empty(count, dtype=np.object_)
        array[:] = items
        return array.reshape(shape)
    if datatype == "BOOL":
        return (np.arange(count) % 2 == 0).reshape(shape)
    dtype = dtype_for(datatype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.random.default_rng(count).integers(info.min, info.max, count, dtype=dtype, endpoint=True)
        values[0], values[-1] = info.min, info.max
        return values.reshape(shape)
    return (np.arange(count, dtype=np.float64) / 3 - 1).astype(dtype).reshape(shape)


def infer_request(
    model: str, inputs: dict[str, npt.NDArray[Any]], *, typed: bool = False, version: str = "", **fields: Any
) -> pb.ModelInferRequest:
    """A ModelInferRequest carrying `inputs` as raw blobs or typed contents."""
    request = pb.ModelInferRequest(model_name=model, model_version=version, **fields)
    for name, array in inputs.items():
        tensor = request.inputs.add(name=name, datatype=datatype_for(array.dtype), shape=array.shape)
        if typed:
            field, values = array_to_contents(array)
            getattr(tensor.contents, field).extend(values)
        else:
            request.raw_input_contents.append(array_to_raw(array))
    return request


@asynccontextmanager
async def stub_for(root: Path, **grpc_settings: Any) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    """A running server on `root` and a raw stub connected to it."""
    async with running_app(root, **grpc_settings) as app:
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}", options=options) as channel:
            yield pb_grpc.GRPCInferenceServiceStub(channel)
