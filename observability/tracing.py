"""OpenTelemetry tracing behind a small PHI-safe interface.

Span attributes are filtered through the same allow list as log fields; anything else is
dropped.  Trace context crosses Kafka as W3C ``traceparent``/``tracestate`` headers, read and
written by OpenTelemetry's propagator.  The daemon continues each input's trace: it parses the
input's ``traceparent`` (or starts a new trace), and every event it emits for the job carries
a child span context of it (:func:`continue_trace`, :func:`inject_headers`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dxai.observability.logging import SAFE_FIELDS

_PROPAGATOR = TraceContextTextMapPropagator()
_IDS = RandomIdGenerator()
_TRACER_NAME = "dxai"

TraceContext: TypeAlias = SpanContext
"""A W3C trace context (trace id, span id, flags, trace state): OpenTelemetry's SpanContext."""


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


def new_trace() -> TraceContext:
    """Start a new sampled trace (for input that arrived without a usable ``traceparent``)."""
    return SpanContext(
        trace_id=_IDS.generate_trace_id(),
        span_id=_IDS.generate_span_id(),
        is_remote=False,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )


def child_context(parent: TraceContext) -> TraceContext:
    """A new span in ``parent``'s trace (same trace id, flags and trace state)."""
    return SpanContext(
        trace_id=parent.trace_id,
        span_id=_IDS.generate_span_id(),
        is_remote=False,
        trace_flags=parent.trace_flags,
        trace_state=parent.trace_state,
    )


def parse_traceparent(value: str | bytes | None) -> TraceContext | None:
    """The context in a ``traceparent`` header value, or None when absent or malformed."""
    if not value:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    parent = trace.get_current_span(_PROPAGATOR.extract({"traceparent": text}))
    found = parent.get_span_context()
    return found if found.is_valid else None


def continue_trace(traceparent: str | bytes | None) -> TraceContext:
    """The context for what a job emits: a child span of ``traceparent``, else of a new trace."""
    return child_context(parse_traceparent(traceparent) or new_trace())


def _carrier(ctx: TraceContext | None) -> dict[str, str]:
    """W3C headers of ``ctx`` (of the current context when None) as a text map."""
    carrier: dict[str, str] = {}
    parent = None if ctx is None else trace.set_span_in_context(NonRecordingSpan(ctx))
    _PROPAGATOR.inject(carrier, context=parent)
    return carrier


def format_traceparent(ctx: TraceContext) -> str:
    """The ``traceparent`` header value of ``ctx``; ValueError when ``ctx`` is not valid."""
    value = _carrier(ctx).get("traceparent")
    if value is None:
        raise ValueError("invalid trace context")
    return value


def inject_headers(ctx: TraceContext | None = None) -> list[tuple[str, bytes]]:
    """``ctx`` (default: the current trace context) as W3C trace context Kafka headers."""
    return [(key, value.encode("ascii")) for key, value in _carrier(ctx).items()]


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> otel_context.Context:
    """The parent context carried by Kafka headers (empty context when absent)."""
    carrier = {
        key.lower(): value.decode("ascii", "replace")
        for key, value in (headers or [])
        if key.lower() in {"traceparent", "tracestate"}
    }
    return _PROPAGATOR.extract(carrier)
