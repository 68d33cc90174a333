"""Traces across Kafka: an upstream trace continues through every stage to the output events.

The daemon runs in Kafka mode on the real broker, fed from a local folder (the sample study:
four series, CT/MR presence pass, US/DX OCR through the batcher), so no Orthanc is touched.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import ConsumerRecord
from obs_helpers import (
    collect,
    job_records,
    kafka_daemon,
    obs_config,
    output_topics,
    produce,
    sample_study,
    study_event,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dxai.observability.metrics import Sensor
from dxai.observability.tracing import Tracer

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_SPAN}-01"
#: The spans every released study with OCR has (presence pass for CT/MR, OCR for US/DX).
STAGES = {
    "kafka.receive",
    "intake",
    "job",
    "fetch.list",
    "fetch.series",
    "instance",
    "deid.header",
    "pixels.presence",
    "pixels.redact",
    "ocr.detect",
    "ocr.recognize",
    "deid.verify",
    "batch",
    "store",
    "publish.decision",
    "publish.results",
}


def _traceparents(records: list[ConsumerRecord[bytes, bytes]]) -> list[str]:
    return [dict(r.headers)["traceparent"].decode() for r in records]


async def _run_one(tmp: Path, bootstrap: str, topic: str, sensor: Sensor, **cfg: Any) -> Any:
    """One event with the upstream ``traceparent``; the decisions and results records."""
    study = sample_study(tmp)
    config = obs_config(tmp, bootstrap, topic, **cfg)
    decisions, results, _dlq = output_topics(topic)
    async with kafka_daemon(config, sensor):
        headers = [("traceparent", TRACEPARENT.encode()), ("tracestate", b"vendor=1")]
        await produce(bootstrap, topic, [(study_event(study, "trace-1"), headers)])
        seen = await collect(bootstrap, [decisions, results], lambda s: bool(s[results]))
    return seen[decisions], seen[results]


async def test_upstream_trace_reaches_every_span_and_the_output_headers(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    exporter = InMemorySpanExporter()
    sensor = Sensor(tracer=Tracer(exporter, batch=False))
    decisions, results = await _run_one(tmp_path, kafka_bootstrap, kafka_topic, sensor)
    assert [r["state"] for r in job_records(results, "trace-1")] == ["released"]
    for value in _traceparents(decisions + results):
        version, trace_id, span_id, flags = value.split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01") and span_id != PARENT_SPAN
    spans = exporter.get_finished_spans()
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACE_ID}
    names = {s.name for s in spans}
    assert names >= STAGES, f"missing stage spans: {sorted(STAGES - names)}"
    by_id = {s.context.span_id: s for s in spans}
    receive = next(s for s in spans if s.name == "kafka.receive")
    assert receive.parent is not None and format(receive.parent.span_id, "016x") == PARENT_SPAN
    publishes = {format(s.context.span_id, "016x") for s in spans if s.name.startswith("publish")}
    assert {v.split("-")[2] for v in _traceparents(decisions + results)} <= publishes
    job = next(s for s in spans if s.name == "job")
    for span in spans:  # every stage of the job hangs under the job span
        if span.name in STAGES - {"kafka.receive", "intake", "job", "batch"}:
            assert _ancestors(span, by_id) & {job.context.span_id}, span.name
    batches = [s for s in spans if s.name == "batch"]
    assert all(b.links for b in batches)  # linked to the item spans they carry
    assert all((b.attributes or {}).get("dxai.model") for b in batches)


def _ancestors(span: Any, by_id: dict[int, Any]) -> set[int]:
    out: set[int] = set()
    while span.parent is not None and span.parent.span_id in by_id:
        out.add(span.parent.span_id)
        span = by_id[span.parent.span_id]
    return out


class _Receiver(BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: POST /v1/traces, protobuf bodies, kept in ``server.requests``."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        server: Any = self.server
        with server.lock:
            server.requests.append((self.path, self.headers.get("Content-Type"), request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@contextmanager
def _otlp_receiver() -> Iterator[Any]:
    server: Any = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.requests, server.lock = [], threading.Lock()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


async def test_otlp_exporter_sends_the_trace_to_a_collector(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    with _otlp_receiver() as receiver:
        port = receiver.server_address[1]
        tracing = {
            "enabled": True,
            "exporter": "otlp",
            "otlp_endpoint": f"http://127.0.0.1:{port}",
            "export_interval_s": 0.2,
            "service_name": "dxai-test",
        }
        _dec, results = await _run_one(
            tmp_path, kafka_bootstrap, kafka_topic, Sensor(), pixels="never", tracing=tracing
        )
        assert [r["state"] for r in job_records(results, "trace-1")] == ["released"]
        # the daemon's exit shut its tracer down: every queued span was exported by then
        with receiver.lock:
            requests = list(receiver.requests)
    assert requests, "the collector received nothing"
    assert {(path, ctype) for path, ctype, _ in requests} == {
        ("/v1/traces", "application/x-protobuf")
    }
    names, trace_ids, services = set(), set(), set()
    for _path, _ctype, request in requests:
        for resource_spans in request.resource_spans:
            for attr in resource_spans.resource.attributes:
                if attr.key == "service.name":
                    services.add(attr.value.string_value)
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    names.add(span.name)
                    trace_ids.add(span.trace_id.hex())
    assert services == {"dxai-test"}
    assert trace_ids == {TRACE_ID}
    assert names >= {
        "kafka.receive",
        "job",
        "deid.header",
        "deid.verify",
        "store",
        "publish.results",
    }
