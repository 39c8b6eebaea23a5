"""Every RPC the clients make, as data: method name, request message and response parser.

Both clients run an :class:`Operation` through their own channel and the shared
retry loop, so the sync and asyncio clients differ only in how they wait.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import numpy.typing as npt
from google.protobuf.message import Message

from clients import _convert
from clients._convert import ParameterValue, version_string
from clients.results import InferResult, ModelMetadata, RepositoryEntry, ServerMetadata
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import model_config_pb2

SERVICE = "inference.GRPCInferenceService"

ResponseT = TypeVar("ResponseT", bound=Message)
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class Operation(Generic[ResponseT, ResultT]):
    """One unary call: ``method`` of the inference service, the request, and how to read the reply.

    ``admin`` marks the calls that change server state; the client sends its admin token with them only.
    """

    method: str
    request: Message
    response_type: type[ResponseT]
    parse: Callable[[ResponseT], ResultT]
    admin: bool = False

    @property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/inference.GRPCInferenceService/ModelInfer``."""
        return f"/{SERVICE}/{self.method}"


def server_live() -> Operation[pb.ServerLiveResponse, bool]:
    """ServerLive -> whether the server process is up."""
    return Operation("ServerLive", pb.ServerLiveRequest(), pb.ServerLiveResponse, lambda reply: reply.live)


def server_ready() -> Operation[pb.ServerReadyResponse, bool]:
    """ServerReady -> whether the server accepts inference."""
    return Operation("ServerReady", pb.ServerReadyRequest(), pb.ServerReadyResponse, lambda reply: reply.ready)


def model_ready(model: str, version: str | int | None) -> Operation[pb.ModelReadyResponse, bool]:
    """ModelReady -> whether a model (version) can serve."""
    request = pb.ModelReadyRequest(name=model, version=version_string(version))
    return Operation("ModelReady", request, pb.ModelReadyResponse, lambda reply: reply.ready)


def server_metadata() -> Operation[pb.ServerMetadataResponse, ServerMetadata]:
    """ServerMetadata -> ServerMetadata."""
    request = pb.ServerMetadataRequest()
    return Operation("ServerMetadata", request, pb.ServerMetadataResponse, _convert.parse_server_metadata)


def model_metadata(model: str, version: str | int | None) -> Operation[pb.ModelMetadataResponse, ModelMetadata]:
    """ModelMetadata -> ModelMetadata."""
    request = pb.ModelMetadataRequest(name=model, version=version_string(version))
    return Operation("ModelMetadata", request, pb.ModelMetadataResponse, _convert.parse_model_metadata)


def model_config(
    model: str, version: str | int | None
) -> Operation[pb.ModelConfigResponse, model_config_pb2.ModelConfig]:
    """ModelConfig -> the ModelConfig message."""
    request = pb.ModelConfigRequest(name=model, version=version_string(version))
    return Operation("ModelConfig", request, pb.ModelConfigResponse, lambda reply: reply.config)


def model_statistics(
    model: str, version: str | int | None
) -> Operation[pb.ModelStatisticsResponse, list[pb.ModelStatistics]]:
    """ModelStatistics -> one ModelStatistics message per model version ("" model: all models)."""
    request = pb.ModelStatisticsRequest(name=model, version=version_string(version))
    return Operation("ModelStatistics", request, pb.ModelStatisticsResponse, lambda reply: list(reply.model_stats))


def repository_index(ready_only: bool) -> Operation[pb.RepositoryIndexResponse, list[RepositoryEntry]]:
    """RepositoryIndex -> the repository's model versions (only ready ones if ``ready_only``)."""
    request = pb.RepositoryIndexRequest(ready=ready_only)
    return Operation("RepositoryIndex", request, pb.RepositoryIndexResponse, _convert.parse_repository_index)


def load_model(model: str) -> Operation[pb.RepositoryModelLoadResponse, None]:
    """RepositoryModelLoad: load (or reload) a model."""
    request = pb.RepositoryModelLoadRequest(model_name=model)
    return Operation("RepositoryModelLoad", request, pb.RepositoryModelLoadResponse, _ignore, admin=True)


def unload_model(model: str) -> Operation[pb.RepositoryModelUnloadResponse, None]:
    """RepositoryModelUnload: unload a model."""
    request = pb.RepositoryModelUnloadRequest(model_name=model)
    return Operation("RepositoryModelUnload", request, pb.RepositoryModelUnloadResponse, _ignore, admin=True)


def infer_result(
    model: str,
    inputs: Mapping[str, npt.ArrayLike],
    *,
    version: str | int | None,
    outputs: Sequence[str] | None,
    request_id: str,
    parameters: Mapping[str, ParameterValue] | None,
) -> Operation[pb.ModelInferResponse, InferResult]:
    """ModelInfer -> the outputs with the model, version and id that answered."""
    request = _convert.build_infer_request(
        model, inputs, version=version, outputs=outputs, request_id=request_id, parameters=parameters
    )
    return Operation("ModelInfer", request, pb.ModelInferResponse, _convert.parse_infer_result)


def _ignore(_reply: Message) -> None:
    return None
