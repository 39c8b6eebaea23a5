"""OpenTelemetry traces of inference requests: a span per request, one per batch execution, linked.

A leaf package: it knows spans, sampling and the W3C trace context, nothing of versions, routing or transports.
"""
