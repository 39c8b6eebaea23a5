"""GRPCInferenceService: each RPC decodes, calls the core or the repository, encodes."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeAlias

import grpc

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server import __version__
from server.core import InferenceCore
from server.errors import (
    MalformedRequestError,
    ResourceExhaustedError,
    ServerError,
    ShuttingDownError,
    UnsupportedError,
    status_name,
)
from server.grpc import messages
from server.grpc.draining import Drain
from server.grpc.errors import grpc_errors, status_for
from server.grpc.overload import CallLimits
from server.grpc.response_wire import ResponseWriter
from server.grpc.streaming import serve_stream
from server.grpc.tensors import ParsedRequest, decode_request, parse_infer_request
from server.names import check_model_name, shown_names
from server.repository.manager import ModelRepository
from server.telemetry.failures import log_failed_request
from server.telemetry.ratelimit import RateLimitedLog
from server.tracing.requests import RequestSpan, RequestTracer
from server.traffic.coordinator import Coordinator
from server.types import NOT_DRAWN, Drawn, InferRequest, message_drawn

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

EXTENSIONS = ("model_repository", "model_configuration", "statistics", "parameters")

_SHARED_MEMORY = (
    "shared-memory tensors are not supported by this server; send tensors in raw_input_contents "
    "(message limits are raised, so large tensors fit)"
)


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """The Open Inference Protocol service with Triton's repository, config and statistics extensions.

    Register it with `server.grpc.registration`: the inference methods return wire bytes.
    """

    def __init__(
        self,
        core: InferenceCore,
        repository: ModelRepository,
        coordinator: Coordinator,
        server_name: str,
        is_ready: Callable[[], bool],
        undecodable: Callable[[str], None],
        tracer: RequestTracer | None = None,
        drain: Drain | None = None,
        limits: CallLimits | None = None,
    ) -> None:
        """`undecodable` hears the status code of every inference request that does not decode;
        `tracer` starts the spans of sampled inference requests (None: tracing off); `drain` admits the
        inference calls and refuses them once the server shuts down; `limits` bounds the inference calls and
        request bytes in progress (None: unbounded)."""
        self._core = core
        self._drain = drain if drain is not None else Drain()
        self._limits = limits if limits is not None else CallLimits(2**62, 2**62)
        self._tracer = tracer
        self._repository = repository
        self._coordinator = coordinator
        self._undecodable = undecodable
        self._server_name = server_name
        self._is_ready = is_ready
        self._responses = ResponseWriter()
        # Undecodable messages cost a client nothing to send: their log line is rate-limited.
        self._malformed_log = RateLimitedLog(logging.getLogger("server.requests"))

    @property
    def limits(self) -> CallLimits:
        """The bounds of the inference calls (the native frontend shares their counters with its C++ path)."""
        return self._limits

    def _parse(self, raw: bytes, context: Context, method: str) -> ParsedRequest:
        try:
            return parse_infer_request(raw)
        except MalformedRequestError as error:
            code = status_name(error)
            self._undecodable(code)
            self._malformed_log.log(
                "request is not a valid ModelInferRequest",
                event="request_undecodable",
                method=method,
                code=code,
                size=len(raw),
                peer=context.peer(),
            )
            raise

    async def _infer(
        self, request: ParsedRequest, context: Context, deadline: float | None = None, method: str = "ModelInfer"
    ) -> bytes:
        tracer = self._tracer
        if tracer is not None:  # with tracing off, this check is all it costs
            drawn = drawn_for(context) if request.drawn is None else request.drawn
            trace = tracer.start(method, context.invocation_metadata, drawn.decision(drawn.trace))
            if trace is not None:
                return await self._infer_traced(request, context, deadline, trace)
        return self._responses.encode(await self._core.infer(self._decode(request, context, deadline)))

    async def _infer_traced(
        self, request: ParsedRequest, context: Context, deadline: float | None, trace: RequestSpan
    ) -> bytes:
        trace.decoded(request.message.model_name, request.message.id)
        try:
            decoded = self._decode(request, context, deadline)
            decoded.trace = trace
            response = self._responses.encode(await self._core.infer(decoded))
        except BaseException as error:
            code, text = status_for(error) if isinstance(error, Exception) else (grpc.StatusCode.CANCELLED, "cancelled")
            trace.failed(code.value[0], f"{code.name}: {text}")
            raise
        trace.succeeded()
        return response

    def _decode(self, request: ParsedRequest, context: Context, deadline: float | None) -> InferRequest:
        message = request.message
        try:
            decoded = decode_request(message, request.blobs)
        except ServerError as error:
            code = status_name(error)
            self._undecodable(code)
            log_failed_request(message.model_name, "", code, message.id, context.invocation_metadata(), error)
            raise
        decoded.deadline = deadline
        decoded.metadata = context.invocation_metadata  # read only when routing needs a sticky key
        decoded.drawn = drawn_for(context) if request.drawn is None else request.drawn
        return decoded

    # ------------------------------------------------------------ health

    @grpc_errors
    async def ServerLive(self, request: pb.ServerLiveRequest, context: Context) -> pb.ServerLiveResponse:
        return pb.ServerLiveResponse(live=True)

    @grpc_errors
    async def ServerReady(self, request: pb.ServerReadyRequest, context: Context) -> pb.ServerReadyResponse:
        return pb.ServerReadyResponse(ready=self._is_ready())

    @grpc_errors
    async def ModelReady(self, request: pb.ModelReadyRequest, context: Context) -> pb.ModelReadyResponse:
        return pb.ModelReadyResponse(ready=self._repository.is_ready(request.name, request.version))

    # ---------------------------------------------------------- metadata

    @grpc_errors
    async def ServerMetadata(self, request: pb.ServerMetadataRequest, context: Context) -> pb.ServerMetadataResponse:
        return pb.ServerMetadataResponse(name=self._server_name, version=__version__, extensions=EXTENSIONS)

    @grpc_errors
    async def ModelMetadata(self, request: pb.ModelMetadataRequest, context: Context) -> pb.ModelMetadataResponse:
        loaded = self._repository.resolve(request.name, request.version)
        return messages.model_metadata(self._repository.record(request.name), loaded)

    @grpc_errors
    async def ModelConfig(self, request: pb.ModelConfigRequest, context: Context) -> pb.ModelConfigResponse:
        loaded = self._repository.resolve(request.name, request.version)
        return pb.ModelConfigResponse(config=messages.model_config(loaded))

    @grpc_errors
    async def ModelStatistics(self, request: pb.ModelStatisticsRequest, context: Context) -> pb.ModelStatisticsResponse:
        versions = self._repository.loaded_versions(request.name, request.version)
        return pb.ModelStatisticsResponse(model_stats=[messages.model_statistics(v) for v in versions])

    # --------------------------------------------------------- inference

    @grpc_errors
    async def ModelInfer(self, request: bytes, context: Context) -> bytes:
        """Takes the serialized ModelInferRequest and answers with the serialized ModelInferResponse
        (registered without a deserializer or serializer)."""
        size = len(request)
        # RESOURCE_EXHAUSTED past max_concurrent_rpcs or max_inflight_bytes, before decoding: a few int operations.
        self._limits.admit(size)
        try:
            self._drain.admit()
            try:
                remaining = context.time_remaining()
                message = self._parse(request, context, "ModelInfer")
                return await self._infer(message, context, None if remaining is None else time.monotonic() + remaining)
            finally:
                self._drain.release()
        finally:
            self._limits.release(size)

    async def ModelStreamInfer(self, request_iterator: AsyncIterator[bytes], context: Context) -> AsyncIterator[bytes]:
        def parse(raw: bytes) -> ParsedRequest:
            parsed = self._parse(raw, context, "ModelStreamInfer")
            drawn = message_drawn(raw)  # the native frontend draws per message on a stream
            return parsed if drawn is None else parsed._replace(drawn=drawn)

        async def infer(request: ParsedRequest) -> bytes:
            return await self._infer(request, context, method="ModelStreamInfer")

        try:
            self._limits.admit(0)  # an open stream counts as one call; its requests are bounded per stream
        except ResourceExhaustedError as error:
            await context.abort(*status_for(error))
        try:
            self._drain.admit()
        except ShuttingDownError as error:
            self._limits.release(0)
            await context.abort(*status_for(error))
        try:
            stream = serve_stream(request_iterator, parse, infer, stop=self._drain.begun(), limits=self._limits)
            async for response in stream:
                yield response
        except ShuttingDownError as error:  # drained: its in-flight requests have been answered
            await context.abort(*status_for(error))
        finally:
            self._drain.release()
            self._limits.release(0)

    # -------------------------------------------------------- repository

    @grpc_errors
    async def RepositoryIndex(self, request: pb.RepositoryIndexRequest, context: Context) -> pb.RepositoryIndexResponse:
        return messages.repository_index(await self._repository.index(ready_only=request.ready))

    @grpc_errors
    async def RepositoryModelLoad(
        self, request: pb.RepositoryModelLoadRequest, context: Context
    ) -> pb.RepositoryModelLoadResponse:
        if request.parameters:
            raise UnsupportedError(
                f"load parameters {shown_names(sorted(request.parameters))} are not supported: this server loads "
                "models only from the repository directory; change config.toml or the version directories, then "
                "load again"
            )
        await self._coordinator.load(check_model_name(request.model_name))
        return pb.RepositoryModelLoadResponse()

    @grpc_errors
    async def RepositoryModelUnload(
        self, request: pb.RepositoryModelUnloadRequest, context: Context
    ) -> pb.RepositoryModelUnloadResponse:
        await self._coordinator.unload(check_model_name(request.model_name))
        return pb.RepositoryModelUnloadResponse()

    # ----------------------------------------------------- shared memory

    @grpc_errors
    async def _shared_memory_unsupported(self, request: Any, context: Context) -> Any:
        raise UnsupportedError(_SHARED_MEMORY)

    SystemSharedMemoryStatus = SystemSharedMemoryRegister = SystemSharedMemoryUnregister = _shared_memory_unsupported
    CudaSharedMemoryStatus = CudaSharedMemoryRegister = CudaSharedMemoryUnregister = _shared_memory_unsupported


def drawn_for(context: Context) -> Drawn:
    """What the native frontend already drew the call's request for (its context says; grpc.aio's has no such
    attribute, and nothing was drawn)."""
    drawn: Drawn = getattr(context, "drawn", NOT_DRAWN)
    return drawn
