"""Protobuf <-> core objects for inference requests and responses."""

from __future__ import annotations

from typing import Any

from oip.codec import CONTENTS_FIELD, TensorCodecError, array_to_raw, contents_to_array, datatype_for, raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from server.errors import InvalidInputError
from server.types import InferRequest, InferResponse, ParameterValue


def parameter_value(parameter: pb.InferParameter) -> ParameterValue | None:
    """The Python value of an InferParameter, or None when it is unset."""
    choice = parameter.WhichOneof("parameter_choice")
    return None if choice is None else getattr(parameter, choice)


def _parameters(fields: Any) -> dict[str, ParameterValue]:
    values = {key: parameter_value(value) for key, value in fields.items()}
    return {key: value for key, value in values.items() if value is not None}


def _typed_values(tensor: pb.ModelInferRequest.InferInputTensor) -> Any:
    field = CONTENTS_FIELD.get(tensor.datatype)
    if field is None:
        raise TensorCodecError(f"datatype {tensor.datatype!r} cannot be sent as typed contents; use raw_input_contents")
    used = [descriptor.name for descriptor, _ in tensor.contents.ListFields()]
    wrong = [name for name in used if name != field]
    if wrong:
        raise TensorCodecError(f"datatype {tensor.datatype} must use contents.{field}, not contents.{wrong[0]}")
    return getattr(tensor.contents, field)


def decode_request(message: pb.ModelInferRequest) -> InferRequest:
    """A ModelInferRequest as an InferRequest; raw contents become zero-copy numpy views."""
    raw = message.raw_input_contents
    if raw and len(raw) != len(message.inputs):
        raise InvalidInputError(
            f"request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents entries; "
            "send exactly one raw blob per input, in the order of `inputs`"
        )
    inputs = {}
    for index, tensor in enumerate(message.inputs):
        if tensor.name in inputs:
            raise InvalidInputError(f"input '{tensor.name}' appears more than once in the request")
        if raw and tensor.HasField("contents"):
            raise InvalidInputError(
                f"input '{tensor.name}' has typed contents but the request also uses raw_input_contents; "
                "a request must use one or the other"
            )
        try:
            if raw:
                inputs[tensor.name] = raw_to_array(raw[index], tensor.datatype, tensor.shape)
            else:
                inputs[tensor.name] = contents_to_array(_typed_values(tensor), tensor.datatype, tensor.shape)
        except TensorCodecError as exc:
            raise InvalidInputError(f"input '{tensor.name}': {exc}") from None
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version,
        inputs=inputs,
        requested_outputs=tuple(output.name for output in message.outputs),
        request_id=message.id,
        parameters=_parameters(message.parameters) if message.parameters else {},
    )


_OutputTensor = pb.ModelInferResponse.InferOutputTensor


def encode_response(response: InferResponse) -> pb.ModelInferResponse:
    """An InferResponse as a ModelInferResponse with raw output contents."""
    outputs = response.outputs
    return pb.ModelInferResponse(
        model_name=response.model_name,
        model_version=response.model_version,
        id=response.request_id,
        outputs=[_OutputTensor(name=n, datatype=datatype_for(a.dtype), shape=a.shape) for n, a in outputs.items()],
        raw_output_contents=[array_to_raw(array) for array in outputs.values()],
    )
