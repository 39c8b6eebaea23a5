"""Builds this process's tracer provider from TracingSettings: one per process, never the global one.

Under --workers each worker builds its own (an App per process) and exports its own spans; the supervisor
builds none. Nothing is built when the exporter is "none", so tracing off costs the request path one check.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from server import __version__
from server.settings import TracingSettings
from server.tracing.batches import BatchTracer
from server.tracing.requests import RequestTracer
from server.tracing.sampling import sampling_policy


def _otlp(settings: TracingSettings) -> SpanExporter:
    # Imported here: the OTLP exporter and its protobufs take 80 ms to import, paid only when used.
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: PLC0415

    # An http:// endpoint is plaintext and https:// TLS; the exporter reads the rest (OTEL_EXPORTER_OTLP_HEADERS,
    # _TIMEOUT, _CERTIFICATE, ...) from the environment itself.
    return OTLPSpanExporter(endpoint=settings.otlp_endpoint)


def _console(settings: TracingSettings) -> SpanExporter:
    return ConsoleSpanExporter(service_name=settings.service_name)


EXPORTERS: dict[str, Callable[[TracingSettings], SpanExporter]] = {"otlp": _otlp, "console": _console}


@dataclass(frozen=True, slots=True)
class Tracing:
    """The tracer provider and the two things the server traces with."""

    provider: TracerProvider
    requests: RequestTracer
    batches: BatchTracer

    def shutdown(self) -> None:
        """Export what is buffered and stop the export thread (blocking: at most the exporter's timeout)."""
        self.provider.shutdown()


def build_tracing(settings: TracingSettings) -> Tracing | None:
    """This process's tracing, or None when the exporter is "none"."""
    if settings.traces_exporter == "none":
        return None
    resource = Resource.create({SERVICE_NAME: settings.service_name, "process.pid": os.getpid()})
    # always_on: the sampling decision is made before a request span is asked for (see sampling.py), and a batch
    # span exists only when one of its requests was sampled.
    provider = TracerProvider(sampler=ALWAYS_ON, resource=resource)
    # The BatchSpanProcessor exports on its own thread; OTEL_BSP_* (delay, queue and batch sizes) tune it.
    provider.add_span_processor(BatchSpanProcessor(EXPORTERS[settings.traces_exporter](settings)))
    tracer = provider.get_tracer("server", __version__)
    policy = sampling_policy(settings.traces_sampler, settings.traces_sampler_arg)
    return Tracing(provider, RequestTracer(tracer, policy), BatchTracer(tracer))
