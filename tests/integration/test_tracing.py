"""OpenTelemetry traces from a real server to a real OTLP/gRPC receiver; exemplars on /metrics; the access log."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from oip.v1 import grpc_service_pb2 as pb
from oip.v1 import grpc_service_pb2_grpc as pb_grpc
from server.app import App
from server.settings import LoggingSettings, TracingSettings
from tests.integration.helpers import infer_request
from tests.integration.test_observability import http_get
from tests.support import onnx_models
from tests.support.otlp import TraceReceiver
from tests.support.process import ServerProcess
from tests.support.servers import local_settings

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
REQUEST_SPAN = "inference.GRPCInferenceService/ModelInfer"
#: Long enough that two concurrent requests always share a batch, short enough to keep the tests quick.
BATCH_CONFIG = "max_batch_size = 8\n[batching]\nmax_queue_delay_us = 100000\n"


def traceparent(parent_span: str, sampled: bool = True) -> tuple[tuple[str, str], ...]:
    return (("traceparent", f"00-{CLIENT_TRACE}-{parent_span}-{'01' if sampled else '00'}"),)


def simple_request(request_id: str = "", **inputs: Any) -> pb.ModelInferRequest:
    arrays = inputs or {"INPUT0": np.ones((1, 16), np.int32), "INPUT1": np.ones((1, 16), np.int32)}
    return infer_request("simple", arrays, id=request_id)


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    onnx_models.write_model(tmp_path, "simple", onnx_models.add_sub(), config=BATCH_CONFIG)
    return tmp_path


@pytest.fixture
def receiver() -> Iterator[TraceReceiver]:
    with TraceReceiver() as started:
        yield started


@asynccontextmanager
async def serving(
    repository: Path, tracing: TracingSettings, access_sample: float = 0.0
) -> AsyncIterator[tuple[App, pb_grpc.GRPCInferenceServiceStub]]:
    settings = local_settings(repository).model_copy(
        update={"tracing": tracing, "log": LoggingSettings(access_sample=access_sample)}
    )
    app = App(settings, CollectorRegistry())
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.grpc_port}") as channel:
            yield app, pb_grpc.GRPCInferenceServiceStub(channel)
    finally:
        await app.stop(grace_s=2.0)  # shuts the tracer provider down: every span is exported by now


def otlp(receiver: TraceReceiver, sampler: str = "always_on") -> TracingSettings:
    return TracingSettings(
        traces_exporter="otlp", exporter_otlp_traces_endpoint=receiver.endpoint, traces_sampler=sampler
    )


async def test_request_spans_continue_the_callers_trace_and_one_batch_span_links_them(
    repository: Path, receiver: TraceReceiver
) -> None:
    async with serving(repository, otlp(receiver)) as (_, stub):
        await asyncio.gather(
            stub.ModelInfer(simple_request("a"), metadata=traceparent("00f067aa0ba902b7")),
            stub.ModelInfer(simple_request("b"), metadata=traceparent("00f067aa0ba902b8")),
        )
        bad = simple_request("c", INPUT0=np.ones((1, 16), np.int32), WRONG=np.ones((1, 16), np.int32))
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.ModelInfer(bad, metadata=traceparent("00f067aa0ba902b9"))
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    requests = {span.attributes["inference.request.id"]: span for span in receiver.named(REQUEST_SPAN)}
    assert set(requests) == {"a", "b", "c"}
    for request_id, parent in (("a", "00f067aa0ba902b7"), ("b", "00f067aa0ba902b8"), ("c", "00f067aa0ba902b9")):
        span = requests[request_id]
        assert (span.trace_id, span.parent_span_id) == (CLIENT_TRACE, parent)
        assert span.attributes["rpc.system"] == "grpc"
        assert span.attributes["rpc.service"] == "inference.GRPCInferenceService"
        assert span.attributes["rpc.method"] == "ModelInfer"
        assert span.attributes["inference.model.name"] == "simple"
        assert span.attributes["inference.model.version"] == "1"
        assert span.resource["service.name"] == "oip-inference-server"

    for request_id in ("a", "b"):
        assert requests[request_id].attributes["rpc.grpc.status_code"] == 0 and not requests[request_id].error
    failed = requests["c"]
    assert failed.error and failed.attributes["rpc.grpc.status_code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert failed.status_message.startswith("INVALID_ARGUMENT: ")

    (batch,) = receiver.named("inference.batch")  # both requests ran in one execution, recorded once
    assert batch.parent_span_id == "" and batch.trace_id != CLIENT_TRACE
    assert sorted(batch.links) == sorted((CLIENT_TRACE, requests[r].span_id) for r in ("a", "b"))
    assert batch.attributes["inference.batch.size"] == 2 and batch.attributes["inference.batch.requests"] == 2
    for request_id in ("a", "b"):
        assert requests[request_id].events == ["inference.queued", "inference.compute.start", "inference.compute.end"]
        assert requests[request_id].links == [(batch.trace_id, batch.span_id)]
    assert requests["c"].events == ["inference.queued"]  # refused by the version's validation: never executed


async def test_stream_messages_get_a_span_each(repository: Path, receiver: TraceReceiver) -> None:
    async with serving(repository, otlp(receiver)) as (_, stub):

        async def messages() -> AsyncIterator[pb.ModelInferRequest]:
            for request_id in ("s1", "s2"):
                yield simple_request(request_id)

        stream = stub.ModelStreamInfer(messages(), metadata=traceparent("00f067aa0ba902b7"))
        responses = [response async for response in stream]
        assert [response.error_message for response in responses] == ["", ""]

    spans = receiver.named("inference.GRPCInferenceService/ModelStreamInfer")
    assert sorted(span.attributes["inference.request.id"] for span in spans) == ["s1", "s2"]
    assert {(span.trace_id, span.parent_span_id, span.attributes["rpc.method"]) for span in spans} == {
        (CLIENT_TRACE, "00f067aa0ba902b7", "ModelStreamInfer")
    }


async def test_an_unsampled_caller_is_not_traced_under_a_parent_based_sampler(
    repository: Path, receiver: TraceReceiver
) -> None:
    async with serving(repository, otlp(receiver, "parentbased_always_on")) as (_, stub):
        await stub.ModelInfer(simple_request("off"), metadata=traceparent("00f067aa0ba902b7", sampled=False))
        await stub.ModelInfer(simple_request("on"), metadata=traceparent("00f067aa0ba902b8"))
    (traced,) = receiver.named(REQUEST_SPAN)
    assert traced.attributes["inference.request.id"] == "on"
    # Alone among traced requests in its execution: the batch is recorded on its span, with no span of its own.
    assert receiver.named("inference.batch") == []
    assert traced.attributes["inference.batch.size"] == 1 and traced.attributes["inference.batch.requests"] == 1


async def test_a_ratio_sampler_traces_that_share_once_and_the_rest_stay_native(
    repository: Path, receiver: TraceReceiver
) -> None:
    # On the native frontend C++ samples each request and hands only the sampled ones to the Python path, which
    # must not decide again (that would trace a quarter, not half); the others are answered in C++.
    settings = otlp(receiver, "traceidratio").model_copy(update={"traces_sampler_arg": 0.5})
    count = 400
    async with serving(repository, settings) as (app, stub):
        for start in range(0, count, 50):
            await asyncio.gather(*(stub.ModelInfer(simple_request(f"r{i}")) for i in range(start, start + 50)))
        native = native_requests(app)
        frontend = app.frontend
    traced = len(receiver.named(REQUEST_SPAN))
    assert abs(traced - count / 2) < 5 * (count * 0.25) ** 0.5, traced  # 5 standard deviations: 50
    assert native == (count - traced if frontend == "native" else 0)


async def test_a_parent_based_sampler_follows_the_callers_flag_on_either_frontend(
    repository: Path, receiver: TraceReceiver
) -> None:
    # Roots are never sampled (ratio 0): only the callers' sampled flag decides, read by C++ on the native path.
    settings = otlp(receiver, "parentbased_traceidratio").model_copy(update={"traces_sampler_arg": 0.0})
    async with serving(repository, settings) as (app, stub):
        await stub.ModelInfer(simple_request("root"))
        await stub.ModelInfer(simple_request("off"), metadata=traceparent("00f067aa0ba902b7", sampled=False))
        await stub.ModelInfer(simple_request("on"), metadata=traceparent("00f067aa0ba902b8"))
        malformed = (("traceparent", f"00-{CLIENT_TRACE}-00f067aa0ba902b9-01-extra"),)  # version 00 ends there
        await stub.ModelInfer(simple_request("malformed"), metadata=malformed)
        native = native_requests(app)
        frontend = app.frontend
    (span,) = receiver.named(REQUEST_SPAN)
    assert span.attributes["inference.request.id"] == "on"
    assert (span.trace_id, span.parent_span_id) == (CLIENT_TRACE, "00f067aa0ba902b8")
    assert native == (3 if frontend == "native" else 0)


def native_requests(app: App) -> float:
    return sum(
        sample.value
        for family in app.registry.collect()
        if family.name == "inference_native_requests"
        for sample in family.samples
        if sample.name == "inference_native_requests_total"
    )


async def test_the_duration_histogram_carries_the_trace_id_for_openmetrics_scrapers(
    repository: Path, receiver: TraceReceiver
) -> None:
    async with serving(repository, otlp(receiver)) as (app, stub):
        await stub.ModelInfer(simple_request(), metadata=traceparent("00f067aa0ba902b7"))
        reader, writer = await asyncio.open_connection("127.0.0.1", app.http_port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\nAccept: application/openmetrics-text; version=1.0.0\r\n\r\n")
        head, _, body = (await reader.read()).decode().partition("\r\n\r\n")
        writer.close()
        _, plain = await http_get(app.http_port, "/metrics")

    assert "Content-Type: application/openmetrics-text" in head
    exemplars = [line for line in body.splitlines() if "# {" in line]
    assert len(exemplars) == 1, exemplars
    assert exemplars[0].startswith("inference_request_duration_seconds_bucket{")
    assert 'model="simple",version="1"} 1.0 # ' in exemplars[0]
    assert f'# {{trace_id="{CLIENT_TRACE}"}}' in exemplars[0]
    assert "trace_id" not in plain  # the Prometheus text format has no exemplars


@pytest.mark.parametrize(("sample", "lines"), [(1.0, 3), (0.0, 0)])
async def test_the_access_log_writes_the_sampled_share(
    repository: Path, caplog: pytest.LogCaptureFixture, sample: float, lines: int
) -> None:
    with caplog.at_level(logging.INFO, logger="server.access"):
        async with serving(repository, TracingSettings(), access_sample=sample) as (_, stub):
            for index in range(3):
                await stub.ModelInfer(simple_request(f"r{index}"), metadata=traceparent("00f067aa0ba902b7"))
    records = [record for record in caplog.records if record.name == "server.access"]
    assert len(records) == lines
    if records:
        record = records[0].__dict__
        assert {key: record[key] for key in ("model", "version", "code", "request_id", "trace_id")} == {
            "model": "simple",
            "version": "1",
            "code": "OK",
            "request_id": "r0",
            "trace_id": CLIENT_TRACE,
        }
        assert record["duration_ms"] > 0


async def test_a_sampled_access_log_writes_that_share_once_and_the_rest_stay_native(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # On the native frontend C++ draws the logged share and hands those requests to the Python path, which logs them
    # without drawing again (else a quarter, not half); the others are answered in C++.
    count = 400
    with caplog.at_level(logging.INFO, logger="server.access"):
        async with serving(repository, TracingSettings(), access_sample=0.5) as (app, stub):
            for start in range(0, count, 50):
                await asyncio.gather(*(stub.ModelInfer(simple_request(f"r{i}")) for i in range(start, start + 50)))
            native = native_requests(app)
            frontend = app.frontend
    lines = len([record for record in caplog.records if record.name == "server.access"])
    assert abs(lines - count / 2) < 5 * (count * 0.25) ** 0.5, lines
    assert native == (count - lines if frontend == "native" else 0)


async def test_tracing_and_the_access_log_together_keep_their_shares(
    repository: Path, receiver: TraceReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # On the native frontend a request handed to Python for one share carries C++'s decision on the other too:
    # were it drawn again there, the log would write 5/8 of the requests, not half.
    settings = otlp(receiver, "traceidratio").model_copy(update={"traces_sampler_arg": 0.5})
    count = 800
    with caplog.at_level(logging.INFO, logger="server.access"):
        async with serving(repository, settings, access_sample=0.5) as (app, stub):
            for start in range(0, count, 50):
                await asyncio.gather(*(stub.ModelInfer(simple_request(f"r{i}")) for i in range(start, start + 50)))
            native = native_requests(app)
            frontend = app.frontend
    logged = {record.__dict__["request_id"] for record in caplog.records if record.name == "server.access"}
    traced = {span.attributes["inference.request.id"] for span in receiver.named(REQUEST_SPAN)}
    bound = 5 * (count * 0.25) ** 0.5  # 5 standard deviations of a 50 % share: 71
    assert abs(len(logged) - count / 2) < bound and abs(len(traced) - count / 2) < bound, (len(logged), len(traced))
    assert native == (count - len(logged | traced) if frontend == "native" else 0)


async def test_a_streams_messages_keep_the_tracing_and_access_log_shares(
    repository: Path, receiver: TraceReceiver, caplog: pytest.LogCaptureFixture
) -> None:
    # The native frontend draws per message on a stream and hands each drawn message to the stream's Python handler
    # with its draws (server.types.DrawnMessage); drawing again there would trace and log a quarter, not half.
    settings = otlp(receiver, "traceidratio").model_copy(update={"traces_sampler_arg": 0.5})
    count = 800

    async def messages() -> AsyncIterator[pb.ModelInferRequest]:
        for index in range(count):
            yield simple_request(f"s{index}")

    with caplog.at_level(logging.INFO, logger="server.access"):
        async with serving(repository, settings, access_sample=0.5) as (app, stub):
            responses = [response async for response in stub.ModelStreamInfer(messages())]
            native = native_requests(app)
            frontend = app.frontend
    assert sorted(r.infer_response.id for r in responses) == sorted(f"s{index}" for index in range(count))
    assert all(r.error_message == "" for r in responses)
    logged = {record.__dict__["request_id"] for record in caplog.records if record.name == "server.access"}
    streamed_spans = receiver.named("inference.GRPCInferenceService/ModelStreamInfer")
    traced = {span.attributes["inference.request.id"] for span in streamed_spans}
    bound = 5 * (count * 0.25) ** 0.5  # 5 standard deviations of a 50 % share: 71
    assert abs(len(logged) - count / 2) < bound and abs(len(traced) - count / 2) < bound, (len(logged), len(traced))
    assert native == (count - len(logged | traced) if frontend == "native" else 0)


def test_each_worker_exports_its_own_spans_set_by_flags(repository: Path, receiver: TraceReceiver) -> None:
    env = {"OTEL_BSP_SCHEDULE_DELAY": "50", "OTEL_TRACES_EXPORTER": "console"}  # the flag wins over the variable
    flags = ("--workers", "2", "--traces-exporter", "otlp", "--otlp-endpoint", receiver.endpoint)
    with ServerProcess(
        repository, *flags, "--traces-sampler", "always_on", "--service-name", "scoring", env=env
    ) as server:
        workers = {entry["pid"] for entry in server.logs if entry.get("msg") == "worker started"}
        for index in range(12):  # a channel (connection) each: the kernel spreads them over both workers
            with grpc.insecure_channel(server.address, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                pb_grpc.GRPCInferenceServiceStub(channel).ModelInfer(simple_request(f"w{index}"), timeout=10)
        spans = receiver.wait_for(REQUEST_SPAN, 12)
    assert {span.resource["service.name"] for span in spans} == {"scoring"}
    pids = {span.resource["process.pid"] for span in spans}
    assert pids <= workers and os.getpid() not in pids
    assert len(pids) == 2
