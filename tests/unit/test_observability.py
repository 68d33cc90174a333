"""PHI-safe logging, the PHI filter, the Sensor's label checks and its spans."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dxai.observability.logging import PhiSafeJsonFormatter, hash_value, job_scope
from dxai.observability.metrics import Sensor, check_label_value, stage_span
from dxai.observability.phi_filter import code_word, span_attributes
from dxai.observability.tracing import (
    Tracer,
    current_traceparent,
    extract_context,
    inject_headers,
)

pytestmark = pytest.mark.unit


def _format(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("dxai.test", logging.INFO, __file__, 1, "instance done", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    out: dict[str, object] = json.loads(PhiSafeJsonFormatter().format(record))
    return out


def _sensor() -> tuple[Sensor, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    return Sensor(tracer=Tracer(exporter, batch=False)), exporter


def test_allowed_fields_are_printed_and_others_hashed() -> None:
    out = _format(output_study_uid="2.25.1", patient_name="DOE^JOHN", count=3, study_uid="1.2.3")
    assert out["output_study_uid"] == "2.25.1"
    assert out["count"] == 3
    assert out["patient_name"] == hash_value("DOE^JOHN")
    assert out["study_uid"] == hash_value("1.2.3")  # the original UID identifies the study
    assert "DOE" not in json.dumps(out)


def test_allowed_names_with_the_wrong_shape_are_hashed() -> None:
    out = _format(state="DOE^JOHN", job="not hex", output_sop_uid="Smith", error_code="x y")
    for key, value in (("state", "DOE^JOHN"), ("job", "not hex"), ("output_sop_uid", "Smith")):
        assert out[key] == hash_value(value)
    assert out["error_code"] == hash_value("x y")


def test_message_arguments_are_printed_only_when_numbers() -> None:
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "read %s of %d", ("DOE", 3), None)
    text = PhiSafeJsonFormatter().format(record)
    assert "DOE" not in text and "read %s of %d" in text
    record = logging.LogRecord("t", logging.INFO, __file__, 1, "took %d ms", (12,), None)
    assert json.loads(PhiSafeJsonFormatter().format(record))["msg"] == "took 12 ms"


def test_exceptions_are_logged_by_class_only() -> None:
    try:
        raise ValueError("patient DOE^JOHN")
    except ValueError:
        import sys

        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    text = PhiSafeJsonFormatter().format(record)
    assert json.loads(text)["exc_type"] == "ValueError" and "DOE" not in text


def test_lines_of_a_job_carry_its_job_and_trace_ids() -> None:
    sensor, _ = _sensor()
    with job_scope("0123456789abcdef"), sensor.span("job") as span:
        out = _format()
    assert out["job"] == "0123456789abcdef"
    assert out["trace_id"] == format(span.context.trace_id, "032x")
    assert out["span_id"] == format(span.context.span_id, "016x")
    assert "job" not in _format() and "trace_id" not in _format()


def test_hash_is_stable_and_short() -> None:
    assert hash_value("x") == hash_value("x") != hash_value("y")
    assert len(hash_value("anything")) == 14


@pytest.mark.parametrize("value", ["proceed", "onnxruntime", "deid_failed", "cuda:0", "0", "12"])
def test_enum_like_label_values_pass(value: str) -> None:
    assert check_label_value(value) == value


@pytest.mark.parametrize(
    "value", ["1.2.840.10008.5.1.4.1.1.2", "DOE^JOHN", "", "x" * 80, "Hello", "123456"]
)
def test_uids_names_and_unbounded_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="label values"):
        check_label_value(value)


def test_code_word_folds_reason_codes_into_labels() -> None:
    assert code_word("pixel_phi_legible") == "pixel_phi_legible"
    assert code_word("Pixel-Engine Error!") == "pixel_engine_error"
    assert code_word("1.2.3") == "other"


def test_sensor_records_on_its_own_registry() -> None:
    sensor = Sensor()
    sensor.count("events_consumed", {"source": "kafka", "outcome": "accepted"})
    sensor.observe("batch_size", 4, {"model": "ppocr_det"})
    sensor.set_gauge("jobs", 2, {"state": "processing"})
    sensor.set_gauge("consumer_lag", 5, {"partition": "1"})
    reg = sensor.registry
    labels = {"source": "kafka", "outcome": "accepted"}
    assert reg.get_sample_value("dxai_events_consumed_total", labels) == 1.0
    assert reg.get_sample_value("dxai_batch_size_count", {"model": "ppocr_det"}) == 1.0
    assert reg.get_sample_value("dxai_jobs", {"state": "processing"}) == 2.0
    assert reg.get_sample_value("process_resident_memory_bytes") > 0
    sensor.forget("consumer_lag", {"partition": "1"})
    assert reg.get_sample_value("dxai_kafka_consumer_lag", {"partition": "1"}) is None
    sensor.forget("consumer_lag", {"partition": "1"})  # idempotent
    with pytest.raises(ValueError):
        sensor.count("events_consumed", {"source": "1.2.3.4.5", "outcome": "accepted"})


def test_spans_keep_only_phi_free_attributes_and_time_their_stage() -> None:
    sensor, exporter = _sensor()
    attrs = {"job": "00ff", "patient_name": "DOE", "output_study_uid": "2.25.9", "state": "X Y"}
    with sensor.span("job", attrs), stage_span("deid.header", {"count": 2}):
        pass
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert dict(spans["job"].attributes or {}) == {
        "dxai.job": "00ff",
        "dxai.output_study_uid": "2.25.9",
    }
    assert spans["deid.header"].parent is not None
    assert spans["deid.header"].parent.span_id == spans["job"].context.span_id
    stage = {"stage": "deid.header"}
    assert sensor.registry.get_sample_value("dxai_stage_seconds_count", stage) == 1.0


def test_a_failing_span_says_the_exception_class_and_nothing_more() -> None:
    sensor, exporter = _sensor()
    with pytest.raises(RuntimeError), sensor.span("fetch.list"):
        raise RuntimeError("could not read DOE^JOHN")
    (span,) = exporter.get_finished_spans()
    assert span.status.description == "RuntimeError"
    assert not span.events  # no exception event: it would carry the message
    assert "DOE" not in json.dumps(dict(span.attributes or {}))


def test_stage_spans_outside_a_job_record_nothing() -> None:
    with stage_span("deid.header") as span:
        span.set(count=1)
    assert current_traceparent() is None


async def test_stage_spans_follow_the_job_into_worker_threads() -> None:
    sensor, exporter = _sensor()

    def work() -> None:
        with stage_span("deid.verify"):
            pass

    with sensor.span("job"):
        await asyncio.to_thread(work)
    spans = {s.name: s for s in exporter.get_finished_spans()}
    assert spans["deid.verify"].context.trace_id == spans["job"].context.trace_id


def test_trace_context_round_trips_through_kafka_headers() -> None:
    sensor, exporter = _sensor()
    with sensor.span("parent") as parent:
        headers = inject_headers()
        trace_id = parent.context.trace_id
    assert any(key == "traceparent" for key, _ in headers)
    ctx = extract_context(headers)
    assert trace.get_current_span(ctx).get_span_context().trace_id == trace_id
    with sensor.span("child", {"output_study_uid": "1.2"}, parent=ctx) as child:
        assert child.context.trace_id == trace_id
    assert span_attributes({"patient_name": "DOE", "output_study_uid": "1.2"}) == {
        "dxai.output_study_uid": "1.2"
    }
    assert len(exporter.get_finished_spans()) == 2


def test_links_are_distinct_and_valid() -> None:
    sensor, exporter = _sensor()
    with sensor.span("a") as a:
        pass
    with sensor.span("batch", links=[a.context, a.context, trace.INVALID_SPAN_CONTEXT]):
        pass
    batch = next(s for s in exporter.get_finished_spans() if s.name == "batch")
    assert [link.context.span_id for link in batch.links] == [a.context.span_id]


def _bindable(port: int) -> bool:
    """Whether a listener can take ``port`` (SO_REUSEADDR: connections in TIME_WAIT don't count)."""
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


async def test_metrics_server_serves_until_stopped_then_releases_the_port() -> None:
    import httpx

    from dxai.configs.schema.services import MetricsConfig
    from dxai.observability.metrics_http import MetricsServer

    sensor = Sensor()
    sensor.count("events_consumed", {"source": "kafka", "outcome": "accepted"})
    server = MetricsServer(MetricsConfig(host="127.0.0.1", port=0), sensor)
    async with server:
        await server.start()  # idempotent
        port = server.port
        assert port is not None
        async with httpx.AsyncClient(timeout=5) as client:
            response = await client.get(f"http://127.0.0.1:{port}/metrics")
        assert b"dxai_events_consumed_total" in response.content
        assert not _bindable(port)
    assert server.port is None
    await server.stop()  # idempotent
    assert _bindable(port)
    async with MetricsServer(MetricsConfig(host="127.0.0.1", port=port), sensor) as again:
        assert again.port == port  # a restarted daemon gets its port back


async def test_disabled_metrics_server_binds_nothing() -> None:
    from dxai.configs.schema.services import MetricsConfig
    from dxai.observability.metrics_http import MetricsServer

    async with MetricsServer(MetricsConfig(enabled=False), Sensor()) as server:
        assert server.port is None
