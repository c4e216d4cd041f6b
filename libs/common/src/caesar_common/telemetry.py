"""OpenTelemetry setup from the standard ``OTEL_*`` variables.

Spans are always created (so logs carry trace ids and context propagates through
events); they are exported over OTLP/HTTP only when an endpoint is configured
(``OTEL_EXPORTER_OTLP_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) or
``OTEL_TRACES_EXPORTER`` asks for an exporter, so a laptop without a collector does
not fill its logs with export errors.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

_provider: TracerProvider | None = None


def _exporter() -> SpanExporter | None:
    choice = os.environ.get("OTEL_TRACES_EXPORTER")
    if choice is None:
        has_endpoint = "OTEL_EXPORTER_OTLP_ENDPOINT" in os.environ or (
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT" in os.environ
        )
        choice = "otlp" if has_endpoint else "none"
    if choice == "none":
        return None
    if choice == "console":
        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def setup_telemetry(service: str) -> TracerProvider:
    """Install the tracer provider and instrument pymongo and aio-pika (idempotent)."""
    global _provider
    if _provider is not None:
        return _provider
    name = os.environ.get("OTEL_SERVICE_NAME", f"caesar-{service}")
    exporter = _exporter()
    sampler = None
    if exporter is None and "OTEL_TRACES_SAMPLER" not in os.environ:
        # Nothing would see the spans: keep the context (trace ids still propagate through
        # events and reach the logs) but do not record spans. Recording them anyway cost
        # 10-15 % of the api's CPU per request in the benchmarks.
        sampler = ParentBased(ALWAYS_OFF)
    provider = TracerProvider(resource=Resource.create({"service.name": name}), sampler=sampler)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor

    PymongoInstrumentor().instrument()
    try:
        from opentelemetry.instrumentation.aio_pika import AioPikaInstrumentor

        AioPikaInstrumentor().instrument()
    except Exception as exc:  # noqa: BLE001 - a version mismatch must not stop the service
        logging.getLogger(__name__).warning("aio-pika instrumentation unavailable: %s", exc)
    _provider = provider
    return provider


def shutdown_telemetry() -> None:
    if _provider is not None:
        _provider.shutdown()


def current_trace_carrier() -> dict[str, str]:
    """W3C trace context of the current span, to be stored with an outbox event."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def context_from_carrier(carrier: Mapping[str, str]) -> context.Context:
    return propagate.extract(dict(carrier))


def tracer(name: str) -> trace.Tracer:
    return trace.get_tracer(name)
