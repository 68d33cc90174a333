"""OpenTelemetry tracing behind a small PHI-safe interface.

Span attributes are filtered through the same allow list as log fields; anything else is
dropped.  Trace context crosses Kafka as W3C ``traceparent``/``tracestate`` headers.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dxai.observability.logging import SAFE_FIELDS

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "dxai"


def configure_tracing(enabled: bool, exporter: str = "none", service_name: str = "dxai") -> None:
    """Install a tracer provider; ``console`` prints spans (OTLP is wired by deployment)."""
    if not enabled:
        return
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter == "console":
        provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
    trace.set_tracer_provider(provider)


def safe_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """Keep only allow-listed attribute names with scalar values."""
    out: dict[str, Any] = {}
    for key, value in (attributes or {}).items():
        if key in SAFE_FIELDS and isinstance(value, str | int | float | bool):
            out[f"dxai.{key}"] = value
    return out


@contextmanager
def span(
    name: str,
    attributes: Mapping[str, Any] | None = None,
    parent: otel_context.Context | None = None,
) -> Iterator[trace.Span]:
    """A span with PHI-safe attributes, optionally under a propagated parent context."""
    tracer = trace.get_tracer(_TRACER_NAME)
    with tracer.start_as_current_span(
        name, context=parent, attributes=safe_attributes(attributes)
    ) as current:
        yield current


def inject_headers() -> list[tuple[str, bytes]]:
    """The current trace context as Kafka headers (W3C trace context)."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return [(key, value.encode("ascii")) for key, value in carrier.items()]


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    """The parent context carried by Kafka headers (empty context when absent)."""
    carrier = {
        key.lower(): value.decode("ascii", "replace")
        for key, value in (headers or [])
        if key.lower() in {"traceparent", "tracestate"}
    }
    return _PROPAGATOR.extract(carrier)
