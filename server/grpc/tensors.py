"""Protobuf <-> core objects for inference requests and responses."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from oip.codec import CONTENTS_FIELD, TensorCodecError, contents_to_array, raw_to_array
from oip.v1 import grpc_service_pb2 as pb
from server.errors import InvalidInputError, MalformedRequestError
from server.grpc.request_wire import SPLIT_MIN_BYTES, split_raw_contents
from server.names import shown
from server.types import Drawn, InferRequest, ParameterValue

Blobs = Sequence[bytes | memoryview]


class ParsedRequest(NamedTuple):
    message: pb.ModelInferRequest
    blobs: Blobs | None = None
    """The raw_input_contents, as views of the wire bytes, when they were split off a large message
    (server.grpc.request_wire); None: they are in `message`."""
    drawn: Drawn | None = None
    """A streamed message's draws by the native frontend (server.types.DrawnMessage); None: the call's."""


def parse_infer_request(raw: bytes) -> ParsedRequest:
    """The ModelInferRequest in `raw`, or MalformedRequestError (INVALID_ARGUMENT).

    The inference RPCs are registered without a request deserializer so that this runs in our handler:
    when grpc deserializes, a bad message becomes UNKNOWN plus a logged traceback, outside our error mapping.
    A large message's tensors are not copied: they stay in `raw` (see server.grpc.request_wire).
    """
    try:
        if len(raw) >= SPLIT_MIN_BYTES and (split := split_raw_contents(raw)) is not None:
            rest, blobs = split
            return ParsedRequest(pb.ModelInferRequest.FromString(rest), blobs)
        return ParsedRequest(pb.ModelInferRequest.FromString(raw))
    except DecodeError as error:
        # protobuf says "Error parsing message with type '...': <reason>"; the reason is what helps.
        reason = str(error).rpartition(": ")[2] or "undecodable"
        raise MalformedRequestError(
            f"the request ({len(raw)} bytes) is not a valid ModelInferRequest protobuf message: {reason}"
        ) from None


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
        raise TensorCodecError(
            f"datatype {shown(tensor.datatype)!r} cannot be sent as typed contents; use raw_input_contents"
        )
    used = [descriptor.name for descriptor, _ in tensor.contents.ListFields()]
    wrong = [name for name in used if name != field]
    if wrong:
        raise TensorCodecError(f"datatype {tensor.datatype} must use contents.{field}, not contents.{wrong[0]}")
    return getattr(tensor.contents, field)


def _decoded_tensor(tensor: pb.ModelInferRequest.InferInputTensor, raw: bytes | memoryview | None) -> Any:
    try:
        if raw is not None:
            return raw_to_array(raw, tensor.datatype, tensor.shape)
        return contents_to_array(_typed_values(tensor), tensor.datatype, tensor.shape)
    except TensorCodecError as exc:
        raise InvalidInputError(f"input '{shown(tensor.name)}': {exc}") from None


#: Longest request `id` accepted, in UTF-8 bytes. The id is echoed exactly in the response (and logged), so an
#: unbounded one would cost its size again on the way out; ids are correlation keys, not payload.
MAX_ID_BYTES = 1024


def _check_id(request_id: str) -> None:
    # A UTF-8 character is at most 4 bytes: ids up to 256 characters (nearly all) skip the encode.
    if len(request_id) > MAX_ID_BYTES // 4 and len(request_id.encode("utf-8", "surrogatepass")) > MAX_ID_BYTES:
        raise InvalidInputError(
            f"request id is {len(request_id.encode('utf-8', 'surrogatepass'))} bytes; ids longer than "
            f"{MAX_ID_BYTES} bytes are refused (the id is echoed in the response)"
        )


def decode_request(message: pb.ModelInferRequest, blobs: Blobs | None = None) -> InferRequest:
    """A ModelInferRequest as an InferRequest; raw contents become zero-copy numpy views.

    `blobs`, when given, are the raw_input_contents split off the message (`ParsedRequest.blobs`)."""
    request_id = message.id
    _check_id(request_id)
    tensors = message.inputs
    raw = message.raw_input_contents if blobs is None else blobs
    if raw:
        if len(raw) != len(tensors):
            raise InvalidInputError(
                f"request has {len(tensors)} inputs but {len(raw)} raw_input_contents entries; "
                "send exactly one raw blob per input, in the order of `inputs`"
            )
        contents: Any = raw
    else:
        contents = itertools.repeat(None)
    inputs = {}
    for tensor, blob in zip(tensors, contents, strict=False):  # contents may be endless
        name = tensor.name
        if name in inputs:
            raise InvalidInputError(f"input '{shown(name)}' appears more than once in the request")
        if blob is not None and tensor.HasField("contents"):
            raise InvalidInputError(
                f"input '{shown(name)}' has typed contents but the request also uses raw_input_contents; "
                "a request must use one or the other"
            )
        inputs[name] = _decoded_tensor(tensor, blob)
    outputs = message.outputs
    return InferRequest(
        model_name=message.model_name,
        model_version=message.model_version,
        inputs=inputs,
        requested_outputs=tuple([output.name for output in outputs]) if outputs else (),
        request_id=request_id,
        parameters=_parameters(message.parameters) if message.parameters else {},
    )
