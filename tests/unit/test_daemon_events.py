"""The event contract: strict parsing, PHI-free errors, trace context, DLQ headers."""

from __future__ import annotations

import json

import pytest

from dxai.configs.errors import InvalidEventError
from dxai.daemon.events import (
    DecisionEvent,
    LocalSource,
    ResultsEvent,
    dlq_headers,
    encode_event,
    header_value,
    parse_study_event,
    trace_headers,
)
from dxai.observability.tracing import (
    TraceContext,
    Tracer,
    context_from_traceparent,
    format_traceparent,
    parse_traceparent,
)

STUDY = "1.2.826.0.1.3680043.8.498.1"


def _event(**over: object) -> dict[str, object]:
    base: dict[str, object] = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": STUDY,
        "destination": "exchange-a",
        "exchange_job_id": "job-42",
        "source": {"kind": "dicomweb"},
    }
    base.update(over)
    return base


def test_valid_event_parses_with_defaults() -> None:
    ev = parse_study_event(json.dumps(_event()).encode())
    assert ev.study_uid == STUDY
    assert ev.priority == "routine"
    assert ev.schema_version == 1
    assert ev.source.kind == "dicomweb"


def test_source_is_discriminated_by_kind() -> None:
    ev = parse_study_event(json.dumps(_event(source={"kind": "local", "path": "/x"})).encode())
    assert isinstance(ev.source, LocalSource)
    assert ev.source.path == "/x"


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not json",
        b"[1, 2]",
        json.dumps(_event(study_uid="DOE^JOHN")).encode(),
        json.dumps(_event(event_type="other")).encode(),
        json.dumps(_event(unknown_key=1)).encode(),
        json.dumps(_event(schema_version=2)).encode(),
        json.dumps(_event(source={"kind": "ftp"})).encode(),
    ],
)
def test_malformed_events_are_rejected(raw: bytes) -> None:
    with pytest.raises(InvalidEventError):
        parse_study_event(raw)


def test_rejection_message_never_echoes_the_input_value() -> None:
    with pytest.raises(InvalidEventError) as info:
        parse_study_event(json.dumps(_event(study_uid="DOE^JOHN")).encode())
    assert "DOE" not in str(info.value)
    assert "study_uid" in str(info.value)


def test_output_events_round_trip() -> None:
    dec = DecisionEvent(
        exchange_job_id="job-42",
        study_uid=STUDY,
        job_key="k",
        pipeline_version="1",
        decision="proceed",
    )
    back = DecisionEvent.model_validate_json(encode_event(dec))
    assert back == dec
    res = ResultsEvent(
        exchange_job_id="job-42",
        study_uid=STUDY,
        job_key="k",
        pipeline_version="1",
        state="released",
        deidentified_study_uid="2.25.1",
    )
    assert ResultsEvent.model_validate_json(encode_event(res)).deidentified_study_uid == "2.25.1"


def new_trace() -> TraceContext:
    """The context of a fresh root span (OpenTelemetry's ids)."""
    with Tracer().span("test") as span:
        return span.context


def test_traceparent_parse_and_format_round_trip() -> None:
    ctx = new_trace()
    parsed = parse_traceparent(format_traceparent(ctx).encode())
    assert parsed is not None
    assert (parsed.trace_id, parsed.span_id, parsed.trace_flags) == (
        ctx.trace_id,
        ctx.span_id,
        ctx.trace_flags,
    )
    assert parse_traceparent("00-" + "0" * 32 + "-" + "1" * 16 + "-01") is None
    assert parse_traceparent("garbage") is None
    assert parse_traceparent(None) is None
    assert context_from_traceparent("garbage") is None


def test_a_span_under_a_stored_traceparent_continues_its_trace() -> None:
    incoming = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    with Tracer().span("publish", parent=context_from_traceparent(incoming)) as span:
        out = span.context
    assert format_traceparent(out).startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert format_traceparent(out) != incoming and out.trace_flags.sampled
    with Tracer().span("publish", parent=context_from_traceparent("garbage")) as span:
        fresh = span.context
    assert fresh.is_valid and fresh.trace_id != out.trace_id


def test_headers() -> None:
    ctx = new_trace()
    hs = trace_headers(ctx, [("dxai-job-key", "abc")])
    assert header_value(hs, "TRACEPARENT") == format_traceparent(ctx).encode()
    assert header_value(hs, "dxai-job-key") == b"abc"
    dl = dlq_headers("not JSON", "invalid_event", "topic/0/5", ctx)
    assert header_value(dl, "dxai-dlq-error-code") == b"invalid_event"
    assert header_value(dl, "traceparent") == format_traceparent(ctx).encode()
    assert header_value(dl, "missing") is None
