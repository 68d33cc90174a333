"""OpenTelemetry tracing behind a small PHI-safe interface (:class:`Tracer`).

One :class:`Tracer` per daemon (its own ``TracerProvider``; the global provider is left alone,
so tests and embedders run several daemons in one process).  Exporters come from the
``tracing:`` config: ``none`` (spans are made, so trace context flows through the daemon and on
to its output events, but nothing is exported), ``console`` (JSON lines on standard output) or
``otlp`` (OTLP/HTTP protobuf to ``tracing.otlp_endpoint`` + ``/v1/traces``).  Export is batched
in a background thread with a bounded queue: a slow or absent collector costs dropped spans,
never a stalled pipeline.

Trace context crosses Kafka as W3C ``traceparent``/``tracestate`` headers, read and written by
OpenTelemetry's propagator (:func:`extract_context`, :func:`inject_headers`).  Span attributes go
through the PHI filter (:func:`dxai.observability.phi_filter.span_attributes`: job keys, output
UIDs, counts and codes only); an exception marks its span failed with its class name alone.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from dxai.configs.schema.services import TracingConfig
from dxai.observability.phi_filter import exception_text, span_attributes

_PROPAGATOR = TraceContextTextMapPropagator()
_TRACER_NAME = "dxai"
_HEADERS = frozenset({"traceparent", "tracestate"})

TraceContext: TypeAlias = SpanContext
"""A W3C trace context (trace id, span id, flags, trace state): OpenTelemetry's SpanContext."""
Parent: TypeAlias = otel_context.Context
"""An opaque parent context (from Kafka headers or a stored ``traceparent``)."""
Kind = Literal["internal", "consumer", "producer", "client", "server"]
_KINDS: dict[Kind, SpanKind] = {
    "internal": SpanKind.INTERNAL,
    "consumer": SpanKind.CONSUMER,
    "producer": SpanKind.PRODUCER,
    "client": SpanKind.CLIENT,
    "server": SpanKind.SERVER,
}


@dataclass(frozen=True)
class ExportSettings:
    """How the background exporter batches (see ``TracingConfig``)."""

    queue_max_spans: int = 8192
    batch_max_spans: int = 512
    interval_s: float = 2.0
    timeout_s: float = 10.0


class SpanHandle:
    """The span a ``with tracer.span(...)`` block runs in."""

    def __init__(self, span: trace.Span) -> None:
        self._span = span

    @property
    def context(self) -> TraceContext:
        """This span's context (what an output event's ``traceparent`` carries)."""
        return self._span.get_span_context()

    def set(self, **attributes: Any) -> None:
        """Add attributes (through the PHI filter: others are dropped)."""
        self._span.set_attributes(span_attributes(attributes))

    def fail(self, code: str) -> None:
        """Mark the span failed with an error code (a word chosen by the code, no message)."""
        self._span.set_status(Status(StatusCode.ERROR, code))
        self._span.set_attributes(span_attributes({"error_code": code}))


NO_SPAN = SpanHandle(trace.INVALID_SPAN)
"""A handle that records nothing (code running outside any job)."""


class Tracer:
    """Makes PHI-safe spans on its own provider; exports through ``exporter`` when given."""

    def __init__(
        self,
        exporter: SpanExporter | None = None,
        *,
        service_name: str = "dxai",
        batch: bool = True,
        settings: ExportSettings | None = None,
    ) -> None:
        """``batch`` False exports each span as it ends (tests with an in-memory exporter)."""
        resource = Resource.create({"service.name": service_name})
        self._provider = TracerProvider(resource=resource)
        self.exporting = exporter is not None
        if exporter is not None:
            self._provider.add_span_processor(_processor(exporter, batch, settings))
        self._tracer = self._provider.get_tracer(_TRACER_NAME)

    @classmethod
    def from_config(cls, config: TracingConfig) -> Tracer:
        """The tracer ``config`` asks for (``enabled: false`` or ``exporter: none``: no export)."""
        settings = ExportSettings(
            queue_max_spans=config.export_queue_max_spans,
            batch_max_spans=config.export_batch_max_spans,
            interval_s=config.export_interval_s,
            timeout_s=config.otlp_timeout_s,
        )
        exporter = _exporter(config) if config.enabled else None
        return cls(exporter, service_name=config.service_name, settings=settings)

    @contextmanager
    def span(
        self,
        name: str,
        attributes: Mapping[str, Any] | None = None,
        *,
        parent: Parent | TraceContext | None = None,
        links: Sequence[TraceContext] = (),
        kind: Kind = "internal",
    ) -> Iterator[SpanHandle]:
        """A span, current within the block: child of ``parent`` (default: the current span),
        linked to ``links``.  An exception fails it with its class name and propagates."""
        span = self._tracer.start_span(
            name,
            context=_as_context(parent),
            kind=_KINDS[kind],
            attributes=span_attributes(attributes),
            links=_links(links),
            record_exception=False,
            set_status_on_exception=False,
        )
        try:
            with trace.use_span(span, record_exception=False, set_status_on_exception=False):
                yield SpanHandle(span)
        except BaseException as exc:
            span.set_status(Status(StatusCode.ERROR, exception_text(exc)))
            span.set_attributes(span_attributes({"error_type": exception_text(exc)}))
            raise
        finally:
            span.end()

    def force_flush(self, timeout_s: float = 10.0) -> bool:
        """Export every ended span now (blocking); False when it did not finish in time."""
        return bool(self._provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self) -> None:
        """Export what is queued and stop the exporter (blocking; call off the event loop)."""
        self._provider.shutdown()


def _processor(
    exporter: SpanExporter, batch: bool, settings: ExportSettings | None
) -> BatchSpanProcessor | SimpleSpanProcessor:
    if not batch:
        return SimpleSpanProcessor(exporter)
    s = settings or ExportSettings()
    return BatchSpanProcessor(
        exporter,
        max_queue_size=s.queue_max_spans,
        schedule_delay_millis=s.interval_s * 1000.0,
        max_export_batch_size=min(s.batch_max_spans, s.queue_max_spans),
        export_timeout_millis=s.timeout_s * 1000.0,
    )


def _exporter(config: TracingConfig) -> SpanExporter | None:
    """The configured exporter (None for ``none``)."""
    if config.exporter == "console":
        return ConsoleSpanExporter(service_name=config.service_name)
    if config.exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        endpoint = config.otlp_endpoint.rstrip("/") + "/v1/traces"
        return OTLPSpanExporter(endpoint=endpoint, timeout=config.otlp_timeout_s)
    return None


def _as_context(parent: Parent | TraceContext | None) -> Parent | None:
    if isinstance(parent, SpanContext):
        return trace.set_span_in_context(NonRecordingSpan(parent)) if parent.is_valid else None
    return parent


def _links(contexts: Sequence[TraceContext]) -> list[Link]:
    """One link per distinct valid span context."""
    seen: dict[tuple[int, int], Link] = {}
    for ctx in contexts:
        if ctx.is_valid:
            seen.setdefault((ctx.trace_id, ctx.span_id), Link(ctx))
    return list(seen.values())


def current_span_context() -> TraceContext | None:
    """The current span's context (None outside a span): what a batch links its items to."""
    ctx = trace.get_current_span().get_span_context()
    return ctx if ctx.is_valid else None


def parse_traceparent(value: str | bytes | None) -> TraceContext | None:
    """The context in a ``traceparent`` header value, or None when absent or malformed."""
    if not value:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
    found = trace.get_current_span(_PROPAGATOR.extract({"traceparent": text})).get_span_context()
    return found if found.is_valid else None


def context_from_traceparent(value: str | bytes | None) -> Parent | None:
    """A parent context from a stored ``traceparent`` (None when absent or malformed)."""
    found = parse_traceparent(value)
    return None if found is None else trace.set_span_in_context(NonRecordingSpan(found))


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


def current_traceparent() -> str | None:
    """The ``traceparent`` of the current span (None outside a span)."""
    return _carrier(None).get("traceparent")


def inject_headers(ctx: TraceContext | None = None) -> list[tuple[str, bytes]]:
    """``ctx`` (default: the current trace context) as W3C trace context Kafka headers."""
    return [(key, value.encode("ascii")) for key, value in _carrier(ctx).items()]


def extract_context(headers: Sequence[tuple[str, bytes]] | None) -> Parent:
    """The parent context carried by Kafka headers (an empty context when absent)."""
    carrier = {
        key.lower(): value.decode("ascii", "replace")
        for key, value in (headers or [])
        if key.lower() in _HEADERS and value is not None
    }
    return _PROPAGATOR.extract(carrier)
