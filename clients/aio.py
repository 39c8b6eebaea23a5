"""Asyncio Open Inference Protocol client over a ``grpc.aio`` channel."""

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
from clients.retry import call_with_retry_async
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import model_config_pb2

ResultT = TypeVar("ResultT")


class AsyncInferenceClient(ClientBase):
    """Asyncio client with the same methods as :class:`~clients.client.InferenceClient`, as coroutines.

    Create it inside the running event loop (the ``grpc.aio`` channel binds to it),
    then ``async with`` it or ``await client.close()``. Retries wait with ``asyncio.sleep``.
    """

    _channel_module: ClassVar[Any] = grpc.aio

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel; calls in flight are cancelled."""
        await self._channel.close()

    async def _run(self, operation: ops.Operation[Any, ResultT], deadline: float | None = None) -> ResultT:
        return operation.parse(await call_with_retry_async(self._bind(operation, deadline), self._retry))

    async def is_server_live(self) -> bool:
        """See :meth:`InferenceClient.is_server_live`."""
        return await self._run(ops.server_live())

    async def is_server_ready(self) -> bool:
        """See :meth:`InferenceClient.is_server_ready`."""
        return await self._run(ops.server_ready())

    async def is_model_ready(self, model: str, version: str | int | None = None) -> bool:
        """See :meth:`InferenceClient.is_model_ready`."""
        return await self._run(ops.model_ready(model, version))

    async def server_metadata(self) -> ServerMetadata:
        """See :meth:`InferenceClient.server_metadata`."""
        return await self._run(ops.server_metadata())

    async def model_metadata(self, model: str, version: str | int | None = None) -> ModelMetadata:
        """See :meth:`InferenceClient.model_metadata`."""
        return await self._run(ops.model_metadata(model, version))

    async def model_config(self, model: str, version: str | int | None = None) -> model_config_pb2.ModelConfig:
        """See :meth:`InferenceClient.model_config`."""
        return await self._run(ops.model_config(model, version))

    async def model_statistics(self, model: str = "", version: str | int | None = None) -> list[pb.ModelStatistics]:
        """See :meth:`InferenceClient.model_statistics`."""
        return await self._run(ops.model_statistics(model, version))

    async def repository_index(self, ready_only: bool = False) -> list[RepositoryEntry]:
        """See :meth:`InferenceClient.repository_index`."""
        return await self._run(ops.repository_index(ready_only))

    async def load_model(self, model: str) -> None:
        """See :meth:`InferenceClient.load_model`."""
        await self._run(ops.load_model(model))

    async def unload_model(self, model: str) -> None:
        """See :meth:`InferenceClient.unload_model`."""
        await self._run(ops.unload_model(model))

    async def infer(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        version: str | int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline sent with the call, same as the sync API
        request_id: str = "",
        parameters: Mapping[str, ParameterValue] | None = None,
    ) -> dict[str, npt.NDArray[Any]]:
        """See :meth:`InferenceClient.infer`."""
        result = await self.infer_result(
            model,
            inputs,
            version=version,
            outputs=outputs,
            timeout=timeout,
            request_id=request_id,
            parameters=parameters,
        )
        return result.outputs

    async def infer_result(
        self,
        model: str,
        inputs: Mapping[str, npt.NDArray[Any]],
        *,
        version: str | int | None = None,
        outputs: Sequence[str] | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 - a gRPC deadline sent with the call, same as the sync API
        request_id: str = "",
        parameters: Mapping[str, ParameterValue] | None = None,
    ) -> InferResult:
        """See :meth:`InferenceClient.infer_result`."""
        operation = ops.infer_result(
            model, inputs, version=version, outputs=outputs, request_id=request_id, parameters=parameters
        )
        return await self._run(operation, timeout)
