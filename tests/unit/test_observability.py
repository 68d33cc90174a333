"""PHI-safe logging and the Sensor's label checks."""

from __future__ import annotations

import json
import logging

import pytest

from dxai.observability.logging import PhiSafeJsonFormatter, hash_value
from dxai.observability.metrics import Sensor, check_label_value


def _format(**extra: object) -> dict[str, object]:
    record = logging.LogRecord("dxai.test", logging.INFO, __file__, 1, "instance done", None, None)
    for key, value in extra.items():
        setattr(record, key, value)
    out: dict[str, object] = json.loads(PhiSafeJsonFormatter().format(record))
    return out


def test_allowed_fields_are_printed_and_others_hashed() -> None:
    out = _format(study_uid="1.2.3", patient_name="DOE^JOHN", count=3)
    assert out["study_uid"] == "1.2.3"
    assert out["count"] == 3
    assert out["patient_name"] == hash_value("DOE^JOHN")
    assert "DOE" not in json.dumps(out)


def test_hash_is_stable_and_short() -> None:
    assert hash_value("x") == hash_value("x") != hash_value("y")
    assert len(hash_value("anything")) == 14


@pytest.mark.parametrize("value", ["proceed", "onnxruntime", "deid_failed", "cuda:0"])
def test_enum_like_label_values_pass(value: str) -> None:
    assert check_label_value(value) == value


@pytest.mark.parametrize("value", ["1.2.840.10008.5.1.4.1.1.2", "DOE^JOHN", "", "x" * 80, "Hello"])
def test_uids_names_and_unbounded_values_are_refused(value: str) -> None:
    with pytest.raises(ValueError, match="label values"):
        check_label_value(value)


def test_sensor_records_on_its_own_registry() -> None:
    sensor = Sensor()
    sensor.count("events_consumed", {"source": "kafka"})
    sensor.observe("batch_size", 4, {"model": "ppocr_det"})
    sensor.set_gauge("jobs", 2, {"state": "processing"})
    reg = sensor.registry
    assert reg.get_sample_value("dxai_events_consumed_total", {"source": "kafka"}) == 1.0
    assert reg.get_sample_value("dxai_batch_size_count", {"model": "ppocr_det"}) == 1.0
    assert reg.get_sample_value("dxai_jobs", {"state": "processing"}) == 2.0
    with pytest.raises(ValueError):
        sensor.count("events_consumed", {"source": "1.2.3.4.5"})


def test_trace_context_round_trips_through_kafka_headers() -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    from dxai.observability.tracing import extract_context, inject_headers, safe_attributes, span

    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("parent") as parent:
        headers = inject_headers()
        trace_id = parent.get_span_context().trace_id
    assert any(key == "traceparent" for key, _ in headers)
    ctx = extract_context(headers)
    assert trace.get_current_span(ctx).get_span_context().trace_id == trace_id
    with span("child", {"study_uid": "1.2.3"}, parent=ctx):
        pass
    assert safe_attributes({"patient_name": "DOE", "study_uid": "1.2"}) == {"dxai.study_uid": "1.2"}


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
    sensor.count("events_consumed", {"source": "kafka"})
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
