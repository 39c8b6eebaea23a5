"""Talking to the server under test: metadata, and ModelStatistics before/after a measurement."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from loadtest.errors import LoadTestError
from loadtest.results import ServerBreakdown
from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc

INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"
STREAM_INFER_METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class StatsSnapshot:
    """Cumulative ModelStatistics counters of one model version (all versions summed when unspecified)."""

    success_count: int = 0
    success_ns: int = 0
    fail_count: int = 0
    queue_ns: int = 0
    compute_input_ns: int = 0
    compute_infer_ns: int = 0
    compute_output_ns: int = 0
    execution_count: int = 0
    inference_count: int = 0


class Target:
    """A server under test, reached over one gRPC channel."""

    def __init__(self, address: str) -> None:
        self.address = address
        options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
        self._channel = grpc.insecure_channel(address, options=options)
        self._stub = pb_grpc.GRPCInferenceServiceStub(self._channel)  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Target:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _call(self, method: str, request: object) -> object:
        try:
            return getattr(self._stub, method)(request, timeout=_TIMEOUT_S)
        except grpc.RpcError as error:
            code = error.code() if hasattr(error, "code") else None
            if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise LoadTestError(f"cannot reach {self.address}: {error.details()}") from None
            name = code.name if code is not None else "ERROR"
            raise LoadTestError(f"{method} failed on {self.address}: {name}: {error.details()}") from None

    def server_description(self) -> str:
        """`name version` from ServerMetadata, for the report."""
        response = self._call("ServerMetadata", pb.ServerMetadataRequest())
        assert isinstance(response, pb.ServerMetadataResponse)
        return f"{response.name} {response.version}".strip()

    def model_metadata(self, model: str, version: str = "") -> pb.ModelMetadataResponse:
        response = self._call("ModelMetadata", pb.ModelMetadataRequest(name=model, version=version))
        assert isinstance(response, pb.ModelMetadataResponse)
        return response

    def max_batch_size(self, model: str, version: str = "") -> int:
        """The model's max_batch_size from ModelConfig, or 0 when the server has no ModelConfig."""
        try:
            response = self._call("ModelConfig", pb.ModelConfigRequest(name=model, version=version))
        except LoadTestError:
            return 0
        assert isinstance(response, pb.ModelConfigResponse)
        return int(response.config.max_batch_size)

    def statistics(self, model: str, version: str = "") -> StatsSnapshot | None:
        """Current counters, or None if the server does not implement ModelStatistics."""
        try:
            response = self._call("ModelStatistics", pb.ModelStatisticsRequest(name=model, version=version))
        except LoadTestError:
            return None
        assert isinstance(response, pb.ModelStatisticsResponse)
        total = StatsSnapshot()
        for stats in response.model_stats:
            inference = stats.inference_stats
            total = StatsSnapshot(
                success_count=total.success_count + inference.success.count,
                success_ns=total.success_ns + inference.success.ns,
                fail_count=total.fail_count + inference.fail.count,
                queue_ns=total.queue_ns + inference.queue.ns,
                compute_input_ns=total.compute_input_ns + inference.compute_input.ns,
                compute_infer_ns=total.compute_infer_ns + inference.compute_infer.ns,
                compute_output_ns=total.compute_output_ns + inference.compute_output.ns,
                execution_count=total.execution_count + stats.execution_count,
                inference_count=total.inference_count + stats.inference_count,
            )
        return total


def breakdown(before: StatsSnapshot, after: StatsSnapshot) -> ServerBreakdown:
    """Per-request server-side averages between two snapshots."""
    ok = after.success_count - before.success_count

    def average_us(after_ns: int, before_ns: int) -> float:
        return (after_ns - before_ns) / ok / 1000 if ok else 0.0

    return ServerBreakdown(
        success_count=ok,
        fail_count=after.fail_count - before.fail_count,
        execution_count=after.execution_count - before.execution_count,
        inference_count=after.inference_count - before.inference_count,
        avg_request_us=average_us(after.success_ns, before.success_ns),
        avg_queue_us=average_us(after.queue_ns, before.queue_ns),
        avg_compute_input_us=average_us(after.compute_input_ns, before.compute_input_ns),
        avg_compute_infer_us=average_us(after.compute_infer_ns, before.compute_infer_ns),
        avg_compute_output_us=average_us(after.compute_output_ns, before.compute_output_ns),
    )
