"""Bytes <-> events: parse input strictly, encode outputs, build dead-letter headers."""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import BaseModel, ValidationError

from dxai.configs.errors import InvalidEventError
from dxai.daemon.events.models import (
    DicomWebSource,
    DimseSource,
    LocalSource,
    NamedSource,
    StudyEvent,
)
from dxai.observability.tracing import TraceContext, inject_headers

Headers = list[tuple[str, bytes]]
MAX_EVENT_BYTES = 2_000_000


def _contract_names() -> frozenset[str]:
    """Every field name and source tag of the input contract (what a reason may spell out)."""
    models = (StudyEvent, DicomWebSource, DimseSource, LocalSource, NamedSource)
    names = {name for model in models for name in model.model_fields}
    return frozenset(names | {"dicomweb", "dimse", "local", "named"})


_CONTRACT_NAMES = _contract_names()


def _loc_part(part: str | int) -> str:
    """A path element of a validation error: a contract name or an index; any other key (an
    unknown key is the sender's text: it may be huge, carry PHI or control characters) is
    ``<key>``."""
    if isinstance(part, int) or part in _CONTRACT_NAMES:
        return str(part)
    return "<key>"


def _problems(exc: ValidationError) -> str:
    """A PHI-free summary: field paths and rule types only, never the input values."""
    parts = []
    for err in exc.errors()[:5]:
        loc = ".".join(_loc_part(p) for p in err["loc"]) or "<root>"
        parts.append(f"{loc}: {err['type']}")
    return "; ".join(parts)


def _load_json(raw: bytes) -> object:
    """Decode ``raw`` as UTF-8 JSON without a BOM; raise :class:`InvalidEventError`.

    Only what the job store keeps (UTF-8 text) and re-reads at run time (pydantic's parser):
    ``json.loads`` on bytes would also take UTF-16/32 and a UTF-8 BOM, which then fail the job.
    Too deep nesting (RecursionError) and integers past Python's digit limit (ValueError) are
    bad input like any other.
    """
    try:
        return json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError, digits
        raise InvalidEventError(f"not JSON ({type(exc).__name__})") from exc


def parse_study_event(raw: bytes) -> StudyEvent:
    """Validate ``raw`` JSON as a :class:`StudyEvent`; raise :class:`InvalidEventError`."""
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEventError(f"event too large ({len(raw)} bytes)")
    data = _load_json(raw)
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
