"""Bytes <-> events: parse input strictly, encode outputs, build dead-letter headers."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from dxai.configs.errors import InvalidEventError
from dxai.daemon.events.models import StudyEvent
from dxai.observability.tracing import TraceContext, inject_headers

Headers = list[tuple[str, bytes]]
MAX_EVENT_BYTES = 2_000_000


def _problems(exc: ValidationError) -> str:
    """A PHI-free summary: field paths and rule types only, never the input values."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['type']}")
    return "; ".join(parts)


def parse_study_event(raw: bytes) -> StudyEvent:
    """Validate ``raw`` JSON as a :class:`StudyEvent`; raise :class:`InvalidEventError`."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError(f"event too large ({len(raw)} bytes)")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEventError(f"not JSON ({type(exc).__name__})") from exc
    if not isinstance(data, dict):
        raise InvalidEventError(f"event must be a JSON object, got {type(data).__name__}")
    try:
        return StudyEvent.model_validate(data)
    except ValidationError as exc:
        raise InvalidEventError(f"does not match the contract: {_problems(exc)}") from exc


def encode_event(event: BaseModel) -> bytes:
    """UTF-8 JSON bytes of an output event."""
    return event.model_dump_json().encode("utf-8")


def trace_headers(ctx: TraceContext, extra: Sequence[tuple[str, str]] = ()) -> Headers:
    """Kafka headers carrying ``ctx`` (``traceparent``/``tracestate``) plus ``extra`` pairs."""
    headers: Headers = inject_headers(ctx)
    headers.extend((k, v.encode("utf-8")) for k, v in extra)
    return headers


def dlq_headers(
    reason: str, error_code: str, origin: str, ctx: TraceContext | None = None
) -> Headers:
    """Dead-letter headers: why (PHI-free reason, error code) and where the bytes came from."""
    headers: Headers = [
        ("dxai-dlq-reason", reason[:1024].encode("utf-8")),
        ("dxai-dlq-error-code", error_code.encode("ascii", "replace")),
        ("dxai-dlq-origin", origin.encode("utf-8")),
    ]
    if ctx is not None:
        headers.extend(inject_headers(ctx))
    return headers


def header_value(headers: Sequence[tuple[str, bytes]] | None, name: str) -> bytes | None:
    """The first header called ``name`` (case-insensitive), or None."""
    for key, value in headers or ():
        if key.lower() == name.lower():
            return value
    return None
