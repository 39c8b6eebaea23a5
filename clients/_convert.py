"""Protobuf <-> numpy / dataclass conversion: the only client code that touches message fields.

Tensor bytes go through :mod:`oip.codec`, shared with the server, so both ends
agree on datatypes, byte order and the BYTES length prefix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from clients.results import InferResult, ModelMetadata, RepositoryEntry, ServerMetadata, TensorMetadata
from oip import codec
from oip.v1 import grpc_service_pb2 as pb

#: Values an inference request parameter may take.
ParameterValue = bool | int | float | str


def version_string(version: str | int | None) -> str:
    """The wire form of a model version: "" lets the server choose."""
    return "" if version is None else str(version)


def set_parameter(target: pb.InferParameter, value: ParameterValue) -> None:
    """Store ``value`` in the InferParameter field matching its Python type."""
    if isinstance(value, bool):  # before int: bool is an int subclass
        target.bool_param = value
    elif isinstance(value, int):
        target.int64_param = value
    elif isinstance(value, float):
        target.double_param = value
    elif isinstance(value, str):
        target.string_param = value
    else:
        raise TypeError(f"parameter value {value!r} must be bool, int, float or str")


def build_infer_request(
    model: str,
    inputs: Mapping[str, npt.ArrayLike],
    *,
    version: str | int | None = None,
    outputs: Sequence[str] | None = None,
    request_id: str = "",
    parameters: Mapping[str, ParameterValue] | None = None,
) -> pb.ModelInferRequest:
    """A ModelInferRequest carrying every input as raw contents, in ``inputs`` order.

    The datatype comes from the array's dtype (str/bytes/object -> BYTES); ``outputs``
    names the outputs to return (None or empty: all of them).
    """
    if isinstance(outputs, str):
        raise TypeError("outputs must be a sequence of output names, not a single string")
    request = pb.ModelInferRequest(model_name=model, model_version=version_string(version), id=request_id)
    for name, value in inputs.items():
        array = np.asarray(value)
        request.inputs.add(name=name, datatype=codec.datatype_for(array.dtype), shape=array.shape)
        request.raw_input_contents.append(codec.array_to_raw(array))
    for name in outputs or ():
        request.outputs.add(name=name)
    for key, parameter in (parameters or {}).items():
        set_parameter(request.parameters[key], parameter)
    return request


def parse_infer_response(response: pb.ModelInferResponse) -> dict[str, npt.NDArray[Any]]:
    """Output name -> array, from raw contents (read-only zero-copy views) or typed contents."""
    raw = response.raw_output_contents
    if raw and len(raw) != len(response.outputs):
        raise codec.TensorCodecError(f"response has {len(response.outputs)} outputs but {len(raw)} raw_output_contents")
    result: dict[str, npt.NDArray[Any]] = {}
    for index, output in enumerate(response.outputs):
        if raw:
            result[output.name] = codec.raw_to_array(raw[index], output.datatype, output.shape)
        else:
            result[output.name] = _typed_contents_to_array(output)
    return result


def parse_infer_result(response: pb.ModelInferResponse) -> InferResult:
    """The response's outputs (see parse_infer_response) with the model, version and id that answered."""
    return InferResult(response.model_name, response.model_version, response.id, parse_infer_response(response))


def _typed_contents_to_array(output: pb.ModelInferResponse.InferOutputTensor) -> npt.NDArray[Any]:
    field = codec.CONTENTS_FIELD.get(output.datatype)
    values: Sequence[Any] = getattr(output.contents, field) if field else ()
    return codec.contents_to_array(values, output.datatype, output.shape)


def parse_tensor_metadata(tensor: pb.ModelMetadataResponse.TensorMetadata) -> TensorMetadata:
    """TensorMetadata message -> dataclass."""
    return TensorMetadata(name=tensor.name, datatype=tensor.datatype, shape=tuple(tensor.shape))


def parse_model_metadata(response: pb.ModelMetadataResponse) -> ModelMetadata:
    """ModelMetadataResponse -> ModelMetadata."""
    return ModelMetadata(
        name=response.name,
        versions=tuple(response.versions),
        platform=response.platform,
        inputs=tuple(parse_tensor_metadata(tensor) for tensor in response.inputs),
        outputs=tuple(parse_tensor_metadata(tensor) for tensor in response.outputs),
    )


def parse_server_metadata(response: pb.ServerMetadataResponse) -> ServerMetadata:
    """ServerMetadataResponse -> ServerMetadata."""
    return ServerMetadata(name=response.name, version=response.version, extensions=tuple(response.extensions))


def parse_repository_index(response: pb.RepositoryIndexResponse) -> list[RepositoryEntry]:
    """RepositoryIndexResponse -> one RepositoryEntry per listed model version."""
    return [
        RepositoryEntry(name=entry.name, version=entry.version, state=entry.state, reason=entry.reason)
        for entry in response.models
    ]
