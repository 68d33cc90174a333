"""/metrics during a real pipeline run: the series an operator acts on move, labels stay bounded.

Kafka mode on the real broker, fed from a local folder (no Orthanc): one study released, one
held for review by a policy rule, one poison event; /metrics is scraped before and after and
parsed with prometheus-client's text parser.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest
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
from prometheus_client.parser import text_string_to_metric_families

from dxai.observability.metrics import Sensor
from dxai.observability.phi_filter import label_value

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: Labels that name buckets or come from the client library, not from dxai's label values.
_LIBRARY_LABELS = {"le", "quantile"}


def _parse(text: str) -> Samples:
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name`` over the series that have ``labels`` (0 when none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def _scrape(port: int) -> Samples:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    response.raise_for_status()
    return _parse(response.text)


def _settled(samples: Samples) -> bool:
    """Every job ended and the sampler has seen the held study."""
    ended = value(samples, "dxai_jobs_in_flight") == 0
    return ended and value(samples, "dxai_review_backlog_age_seconds") > 0


async def _scrape_until_settled(port: int, deadline_s: float = 60) -> Samples:
    end = time.monotonic() + deadline_s
    while True:
        samples = await _scrape(port)
        if _settled(samples):
            return samples
        if time.monotonic() > end:
            pytest.fail("the jobs did not settle on /metrics before the deadline")
        await asyncio.sleep(0.1)  # poll interval


async def test_metrics_move_during_a_real_run(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    study = sample_study(tmp_path)
    metrics = {"enabled": True, "host": "127.0.0.1", "port": 0, "sample_interval_s": 0.2}
    config = obs_config(tmp_path, kafka_bootstrap, kafka_topic, metrics=metrics)
    decisions, results, dlq = output_topics(kafka_topic)
    async with kafka_daemon(config, Sensor()) as handle:
        assert handle.metrics_port is not None
        before = await _scrape(handle.metrics_port)
        events = [
            (study_event(study, "m-released"), []),
            (study_event(study, "m-held", destination="review-desk"), []),
            (b"{not json", []),
        ]
        await produce(kafka_bootstrap, kafka_topic, events)
        seen = await collect(
            kafka_bootstrap,
            [decisions, results, dlq],
            lambda s: len(s[results]) >= 2 and len(s[dlq]) >= 1,
        )
        after = await _scrape_until_settled(handle.metrics_port)
    states = {r["exchange_job_id"]: r["state"] for r in job_records(seen[results], "m-released")}
    states.update({r["exchange_job_id"]: r["state"] for r in job_records(seen[results], "m-held")})
    assert states == {"m-released": "released", "m-held": "held_for_review"}
    _assert_moved(before, after)
    _assert_labels_bounded(after)


def _assert_moved(before: Samples, after: Samples) -> None:
    """Every key series grew from ``before`` to ``after``."""
    counters = {
        ("dxai_events_consumed_total", ("source", "kafka"), ("outcome", "accepted")): 2,
        ("dxai_events_consumed_total", ("outcome", "dead_letter")): 1,
        ("dxai_events_produced_total", ("topic", "results"), ("outcome", "ok")): 2,
        ("dxai_events_produced_total", ("topic", "decisions"), ("outcome", "ok")): 2,
        ("dxai_events_produced_total", ("topic", "dlq"), ("outcome", "ok")): 1,
        ("dxai_decisions_total", ("decision", "proceed")): 1,
        ("dxai_decisions_total", ("decision", "hold")): 1,
        ("dxai_holds_total", ("reason", "review_required")): 1,
        ("dxai_dead_letters_total", ("reason", "invalid_event")): 1,
        ("dxai_errors_total", ("component", "intake"), ("error_code", "invalid_event")): 1,
        ("dxai_decision_latency_seconds_count", ("decision", "proceed")): 1,
        ("dxai_end_to_end_latency_seconds_count", ("state", "released")): 1,
        ("dxai_stage_seconds_count", ("stage", "deid.header")): 4,
        ("dxai_stage_seconds_count", ("stage", "ocr.detect")): 1,
        ("dxai_stage_seconds_count", ("stage", "store")): 1,
        ("dxai_batch_size_count", ("model", "ppocr_det")): 1,
        ("dxai_batch_fill_ratio_count", ("model", "ppocr_det")): 1,
        ("dxai_batch_execution_seconds_count", ("model", "ppocr_det")): 1,
        ("dxai_batch_queue_wait_seconds_count", ("model", "ppocr_det")): 1,
        ("dxai_instances_total", ("status", "passed")): 4,
        ("dxai_event_loop_lag_seconds_count",): 1,
    }
    for (name, *labels), least in counters.items():
        grown = value(after, name, **dict(labels)) - value(before, name, **dict(labels))
        assert grown >= least, f"{name}{dict(labels)} grew by {grown}, expected >= {least}"
    assert value(after, "dxai_jobs", state="released") >= 1
    assert value(after, "dxai_jobs", state="held_for_review") >= 1
    assert value(after, "dxai_review_backlog_age_seconds") > 0
    assert any(n == "dxai_review_held_instances" for n, _ in after)
    assert any(n == "dxai_kafka_consumer_lag" and ("partition", "0") in ls for n, ls in after)
    assert value(after, "dxai_batch_queue_depth", model="ppocr_det") == 0
    assert value(after, "process_resident_memory_bytes") > 50e6
    assert value(after, "dxai_jobs_in_flight") == 0


def _assert_labels_bounded(samples: Samples) -> None:
    """Every label value is a short enum word or a small number: no UID, no PHI."""
    for _name, labels in samples:
        for key, val in labels:
            if key not in _LIBRARY_LABELS:
                assert label_value(val) == val
