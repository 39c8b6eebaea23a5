"""Blocking Open Inference Protocol client over a ``grpc`` channel."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, ClassVar, Self, TypeVar

import grpc
import numpy.typing as npt

from clients import _operations as ops
from clients._base import ClientBase
from clients._convert import ParameterValue
from clients.results import InferResult, ModelMetadata, RepositoryEntry, ServerMetadata
from clients.retry import call_with_retry
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import model_config_pb2

ResultT = TypeVar("ResultT")


class InferenceClient(ClientBase):
    """Blocking client: numpy arrays in, numpy arrays out.

    Thread-safe; one client (one HTTP/2 connection) can serve many threads. Use it
    as a context manager or call :meth:`close`. Constructor arguments are described
    on :class:`clients._base.ClientBase`. Every failed call raises
    :class:`~clients.errors.InferenceServerError`; calls failing with UNAVAILABLE are
    retried first according to the client's :class:`~clients.retry.RetryPolicy`.
    """

    _channel_module: ClassVar[Any] = grpc

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        self._channel.close()

    def _run(self, operation: ops.Operation[Any, ResultT], deadline: float | None = None) -> ResultT:
        return operation.parse(call_with_retry(self._bind(operation, deadline), self._retry))

    def is_server_live(self) -> bool:
        """Whether the server process is up (ServerLive)."""
        return self._run(ops.server_live())

    def is_server_ready(self) -> bool:
        """Whether the server is ready to serve inference (ServerReady)."""
        return self._run(ops.server_ready())

    def is_model_ready(self, model: str, version: str | int | None = None) -> bool:
        """Whether ``model`` (at ``version``; None: the default) can serve (ModelReady)."""
        return self._run(ops.model_ready(model, version))

    def server_metadata(self) -> ServerMetadata:
        """Server name, version and extensions (ServerMetadata)."""
        return self._run(ops.server_metadata())

    def model_metadata(self, model: str, version: str | int | None = None) -> ModelMetadata:
        """A model's versions, platform, inputs and outputs (ModelMetadata)."""
        return self._run(ops.model_metadata(model, version))

    def model_config(self, model: str, version: str | int | None = None) -> model_config_pb2.ModelConfig:
        """A model's configuration message (ModelConfig extension)."""
        return self._run(ops.model_config(model, version))

    def model_statistics(self, model: str = "", version: str | int | None = None) -> list[pb.ModelStatistics]:
        """Per-version inference statistics messages; ``model=""`` asks for every model."""
        return self._run(ops.model_statistics(model, version))

    def repository_index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        """The model versions in the repository with their state (RepositoryIndex)."""
        return self._run(ops.repository_index(ready_only))

    def load_model(self, model: str) -> None:
        """Load or reload ``model`` from the repository (RepositoryModelLoad)."""
        self._run(ops.load_model(model))

    def unload_model(self, model: str) -> None:
        """Unload ``model`` (RepositoryModelUnload)."""
        self._run(ops.unload_model(model))

    def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        version: str | int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
        request_id: str = "",
        parameters: Mapping[str, ParameterValue] | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """Run ``model`` on ``inputs`` and return its outputs by name (ModelInfer).

        Args:
            model: model name.
            inputs: input name -> array; sent as raw contents, the datatype taken from the
                dtype (str, bytes and object arrays are sent as BYTES).
            version: model version; None lets the server route the request.
            outputs: names of the outputs to return; None returns all of them.
            timeout: seconds per attempt; None uses the client's default.
            request_id: the request's ``id``, echoed by the server.
            parameters: request parameters (bool, int, float or str values).

        Returns:
            output name -> array, in the server's order. Arrays decoded from raw contents are
            read-only views over the response bytes; BYTES outputs are object arrays of ``bytes``.

        Raises:
            InferenceServerError: the call failed (e.g. NOT_FOUND, INVALID_ARGUMENT, UNAVAILABLE).
            oip.codec.TensorCodecError: an input dtype has no protocol datatype, or the response
                tensors do not decode.
        """
        result = self.infer_result(
            model,
            inputs,
            version=version,
            outputs=outputs,
            timeout=timeout,
            request_id=request_id,
            parameters=parameters,
        )
        return result.outputs

    def infer_result(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        version: str | int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,
        request_id: str = "",
        parameters: Mapping[str, ParameterValue] | None = None,
    ) -> InferResult:
        """Like :meth:`infer`, with the response's envelope: ``model_version`` names the version that served
        the request (the server's routing choice when ``version`` is None)."""
        operation = ops.infer_result(
            model, inputs, version=version, outputs=outputs, request_id=request_id, parameters=parameters
        )
        return self._run(operation, timeout)
