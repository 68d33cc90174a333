"""Observability pieces without services: batch spans, the configured tracer, the sampler."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from test_batcher import FakeEngine, item, make, poll
from test_daemon_pipeline import RAW, MemSource, Rig, _event

from dxai.configs.schema.services import TracingConfig
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import Pipeline
from dxai.daemon.telemetry import sample_store
from dxai.observability.logging import PhiSafeJsonFormatter
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import Tracer

pytestmark = pytest.mark.unit
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_a_batch_span_links_the_items_of_every_trace_it_carries() -> None:
    exporter = InMemorySpanExporter()
    sensor = Sensor(tracer=Tracer(exporter, batch=False))
    engine = FakeEngine(gated=True)
    batcher = make(engine, sensor=sensor, max_queue_delay_ms=60_000.0)
    await batcher.start()

    async def job(name: str) -> None:
        with sensor.span(name, parent=None):
            await batcher.submit(item(1.0))

    try:
        # a first item keeps the engine busy: the two jobs' items wait and leave as one batch
        busy = asyncio.create_task(batcher.submit(item(0.0)))
        await poll(engine.entered.is_set)
        first = asyncio.create_task(job("job-a"))
        await poll(lambda: batcher.depth == 1)  # job-a's item is queued first
        second = asyncio.create_task(job("job-b"))
        await poll(lambda: batcher.depth == 2)
        engine.gate.set()
        await asyncio.gather(busy, first, second)
    finally:
        await batcher.stop()
    finished = exporter.get_finished_spans()
    spans = {s.name: s for s in finished}
    a, b = spans["job-a"], spans["job-b"]
    batch = next(s for s in finished if dict(s.attributes or {}).get("dxai.batch_size") == 2)
    assert a.context.trace_id != b.context.trace_id
    assert batch.parent is not None and batch.parent.span_id == a.context.span_id
    assert {link.context.span_id for link in batch.links} == {a.context.span_id, b.context.span_id}
    attrs = dict(batch.attributes or {})
    assert attrs["dxai.model"] == "fake" and attrs["dxai.fill_ratio"] == 0.5
    stage = {"stage": "batch"}
    assert sensor.registry.get_sample_value("dxai_stage_seconds_count", stage) == 2.0


def test_tracer_from_config_exports_only_when_enabled() -> None:
    assert not Tracer.from_config(TracingConfig()).exporting
    assert not Tracer.from_config(TracingConfig(enabled=True)).exporting  # exporter none
    console = Tracer.from_config(TracingConfig(enabled=True, exporter="console"))
    assert console.exporting
    console.shutdown()
    with pytest.raises(ValueError, match="otlp_endpoint"):
        TracingConfig(otlp_endpoint="grpc://collector:4317")


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_an_absent_collector_never_slows_the_pipeline() -> None:
    config = TracingConfig(
        enabled=True,
        exporter="otlp",
        otlp_endpoint=f"http://127.0.0.1:{_closed_port()}",
        otlp_timeout_s=0.5,
        export_interval_s=0.05,
        export_queue_max_spans=64,
    )
    sensor = Sensor(tracer=Tracer.from_config(config))
    started = time.perf_counter()
    for n in range(3000):  # far more than the queue holds: the rest is dropped, not waited for
        with sensor.span("instance", {"count": n}):
            pass
    assert time.perf_counter() - started < 5.0
    await asyncio.wait_for(asyncio.to_thread(sensor.tracer.shutdown), 30)


async def test_sampler_sets_job_state_and_review_backlog_gauges(tmp_path: Path) -> None:
    sensor = Sensor()
    async with JobStore(tmp_path / "jobs.sqlite") as store:
        held = await store.claim("job-1", "1.2.3", "1", "{}", None)
        await store.set_state(held.job.key, "fetching")
        await store.set_state(held.job.key, "processing")
        results = json.dumps({"instances_held": 3})
        await store.conclude(held.job.key, "held_for_review", "{}", results)
        await store.claim("job-2", "1.2.4", "1", "{}", None)
        await sample_store(store, sensor, now=time.time() + 100.0)
    reg = sensor.registry
    assert reg.get_sample_value("dxai_jobs", {"state": "held_for_review"}) == 1.0
    assert reg.get_sample_value("dxai_jobs", {"state": "received"}) == 1.0
    assert reg.get_sample_value("dxai_jobs", {"state": "released"}) == 0.0
    assert reg.get_sample_value("dxai_review_held_instances") == 3.0
    assert 99.0 < reg.get_sample_value("dxai_review_backlog_age_seconds") < 200.0


async def test_sampler_reports_no_backlog_when_nothing_is_held(tmp_path: Path) -> None:
    sensor = Sensor()
    async with JobStore(tmp_path / "jobs.sqlite") as store:
        await sample_store(store, sensor)
    assert sensor.registry.get_sample_value("dxai_review_backlog_age_seconds") == 0.0
    assert sensor.registry.get_sample_value("dxai_review_held_instances") == 0.0


class _CrashingSource(MemSource):
    """A source whose listing raises an error that quotes PHI (as a careless library might)."""

    async def list_series(self, study_uid: str) -> list[str]:
        raise RuntimeError("patient DOE^JOHN born 19320524 not found")


async def test_a_crashing_job_leaves_no_phi_in_spans_or_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    rig = Rig(tmp_path, _CrashingSource([RAW]))
    rig.sensor.tracer = Tracer(exporter, batch=False)
    rig.parts.sensor = rig.sensor
    caplog.set_level(logging.DEBUG)
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        assert await pipe.submit(_event(), TRACEPARENT, "t/0/0") == "accepted"
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["block"]
    formatter = PhiSafeJsonFormatter()
    logs = "\n".join(formatter.format(r) for r in caplog.records)
    spans = exporter.get_finished_spans()
    texts = [
        logs,
        *(json.dumps([s.name, dict(s.attributes or {}), s.status.description]) for s in spans),
    ]
    for planted in ("DOE", "19320524"):
        assert not [t for t in texts if planted in t]
    job = next(s for s in spans if s.name == "job")
    assert job.status.description == "internal_error"
    assert {format(s.context.trace_id, "032x") for s in spans} == {TRACEPARENT.split("-")[1]}
    assert '"reason": "RuntimeError"' in logs  # the class, never the message
