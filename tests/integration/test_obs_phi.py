"""No PHI in logs, metric labels or span attributes, on the success and the failure paths.

The sample CT study carries planted PHI (names, MRN, dates, addresses in its header; names,
MRN and dates burned into its pixels) and original UIDs.  It runs through the daemon in Kafka
mode (real broker, local folder source, no Orthanc) as a released study, as a study with a
truncated instance (failed instance, held), as a study the source does not have (fetch fails,
dead letter) and as a poison event that quotes PHI (dead letter).  Every log line (DEBUG, all
loggers, the daemon's JSON formatter), every metric label value and every span (names,
attributes, status, events, links) is searched for the planted values.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from obs_helpers import (
    collect,
    job_records,
    kafka_daemon,
    obs_config,
    output_topics,
    produce,
    sample_study,
    sample_truth,
    study_event,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from dxai.observability.logging import PhiSafeJsonFormatter
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import Tracer

pytestmark = pytest.mark.integration


def planted(study_uid: str) -> set[str]:
    """The PHI strings and original UIDs of the study (short tokens left out: they occur by
    chance in any text)."""
    values: set[str] = set()
    for record in sample_truth()["files"]:
        if record["study_instance_uid"] != study_uid:
            continue
        values.update(record["phi_strings"])
        values.update(record["original_uids"])
        values.update(b["text"] for b in record.get("burned_in", []) if b.get("phi"))
    return {v for v in values if len(v) >= 5}


@contextmanager
def captured_logs() -> Iterator[io.StringIO]:
    """Every log record of every logger at DEBUG, through the daemon's JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(PhiSafeJsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def _broken_copy(tmp: Path, study_uid: str) -> None:
    """``inbox/broken``: the CT study with one of its two instances truncated."""
    files = [f for f in sample_truth()["files"] if f["study_instance_uid"] == study_uid]
    folder = tmp / "inbox" / "broken"
    folder.mkdir(parents=True)
    for n, record in enumerate(files):
        data = (tmp / "inbox" / "study" / record["path"]).read_bytes()
        (folder / f"{n}.dcm").write_bytes(data[: len(data) * 2 // 3] if n == 0 else data)


def _span_text(span: ReadableSpan) -> str:
    """Everything a span carries that leaves the process, as text."""
    parts: list[Any] = [span.name, dict(span.attributes or {}), span.status.description]
    parts += [(e.name, dict(e.attributes or {})) for e in span.events]
    parts += [dict(link.attributes or {}) for link in span.links]
    parts.append(dict(span.resource.attributes))
    return json.dumps(parts, default=str)


def _label_values(sensor: Sensor) -> list[str]:
    text = generate_latest(sensor.registry).decode()
    return [
        value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        for value in sample.labels.values()
    ]


def _leaks(text: str, values: set[str]) -> list[str]:
    lowered = text.lower()
    return sorted(v for v in values if v.lower() in lowered)


async def test_planted_phi_reaches_no_log_label_or_span(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    study = sample_study(tmp_path)
    _broken_copy(tmp_path, study)
    phi = planted(study)
    assert len(phi) >= 15
    poison = json.dumps({"patient_name": "Müller^Jürgen", "mrn": "MRN9264713"}).encode()
    exporter = InMemorySpanExporter()
    sensor = Sensor(tracer=Tracer(exporter, batch=False))
    config = obs_config(tmp_path, kafka_bootstrap, kafka_topic)
    decisions, results, dlq = output_topics(kafka_topic)
    events = [
        (study_event(study, "phi-ok"), []),
        (study_event(study, "phi-broken", path="broken"), []),
        (study_event("1.2.826.0.1.3680043.8.498.999", "phi-missing"), []),
        (poison, []),
    ]
    with captured_logs() as logs:
        async with kafka_daemon(config, sensor):
            await produce(kafka_bootstrap, kafka_topic, events)
            seen = await collect(
                kafka_bootstrap,
                [decisions, results, dlq],
                lambda s: len(s[results]) >= 3 and len(s[dlq]) >= 2,
            )
    states = {
        job: [r["state"] for r in job_records(seen[results], job)]
        for job in ("phi-ok", "phi-broken", "phi-missing")
    }
    assert states == {
        "phi-ok": ["released"],
        "phi-broken": ["held_for_review"],
        "phi-missing": ["failed"],
    }
    text = logs.getvalue()
    assert text.count("\n") > 20 and '"job": "' in text
    assert _leaks(text, phi) == []
    assert _leaks(" ".join(_label_values(sensor)), phi) == []
    spans = exporter.get_finished_spans()
    assert len(spans) > 20
    assert _leaks("\n".join(_span_text(s) for s in spans), phi) == []
    outputs = {r["deidentified_study_uid"] for r in job_records(seen[results], "phi-ok")}
    attributes = {v for s in spans for v in (s.attributes or {}).values()}
    assert outputs <= attributes  # output UIDs are what spans carry instead
