"""The daemon end to end: real Kafka broker, source and destination Orthancs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from kafka_helpers import kafka_section
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import run_daemon
from dxai.observability.metrics import Sensor

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
Seen = dict[str, list[ConsumerRecord[bytes, bytes]]]


def _config(
    tmp: Path, bootstrap: str, topic: str, pair: Any, transactional: bool = False
) -> DxaiConfig:
    return DxaiConfig.model_validate(
        {
            "mode": "production",
            "state": {"data_dir": str(tmp)},
            "deid": {"pixels": "never"},
            "pipeline": {"decision_deadline_s": 60, "cpu_workers": 2},
            "kafka": kafka_section(
                bootstrap,
                topic,
                max_retries=1,
                retry_backoff_initial_s=0.1,
                transactional=transactional,
            ),
            "source_dicomweb": {"base_url": pair.source.dicomweb_url},
            "destination_dicomweb": {"base_url": pair.dest.dicomweb_url},
            "metrics": {"enabled": False},
        }
    )


def _upload(pair: Any, ds: Dataset) -> None:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    httpx.post(f"{pair.source.base_url}/instances", content=buf.getvalue()).raise_for_status()


def _event(study_uid: str, job: str) -> bytes:
    return json.dumps(
        {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": study_uid,
            "destination": "dest",
            "exchange_job_id": job,
            "source": {"kind": "dicomweb"},
        }
    ).encode()


async def _collect(bootstrap: str, topics: list[str], want: Callable[[Seen], bool]) -> Seen:
    seen: Seen = {t: [] for t in topics}
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        isolation_level="read_committed",
    )
    await consumer.start()
    try:
        end = time.monotonic() + 120
        while not want(seen):
            if time.monotonic() > end:
                pytest.fail(
                    f"outputs not seen before the deadline: {list(map(len, seen.values()))}"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                seen[tp.topic].extend(msgs)
    finally:
        await consumer.stop()
    return seen


@pytest.mark.parametrize("transactional", [False, True], ids=["idempotent", "transactional"])
async def test_event_to_destination_once_and_poison_to_dlq(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topic: str,
    clean_orthanc: Any,
    make_ct: Callable[[], Dataset],
    transactional: bool,
) -> None:
    ds = make_ct()
    study = str(ds.StudyInstanceUID)
    _upload(clean_orthanc, ds)
    cfg = _config(tmp_path, kafka_bootstrap, kafka_topic, clean_orthanc, transactional)
    stop = asyncio.Event()
    daemon = asyncio.create_task(run_daemon(cfg, stop, Sensor()))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(kafka_topic, b"{broken", key=b"a")
        await producer.send_and_wait(kafka_topic, _event("1.2.3.999", "job-missing"), key=b"b")
        for _ in range(2):
            headers = [("traceparent", TRACEPARENT.encode())]
            await producer.send_and_wait(
                kafka_topic, _event(study, "job-1"), key=b"c", headers=headers
            )
    finally:
        await producer.stop()
    dec_t, res_t, dlq_t = (f"{kafka_topic}.{s}" for s in ("decisions", "results", "dlq"))
    seen = await _collect(
        kafka_bootstrap,
        [dec_t, res_t, dlq_t],
        lambda s: len(s[res_t]) >= 2 and len(s[dlq_t]) >= 2,
    )
    stop.set()
    await asyncio.wait_for(daemon, 60)
    results = [json.loads(m.value or b"") for m in seen[res_t]]
    decisions = [json.loads(m.value or b"") for m in seen[dec_t]]
    ok = [r for r in results if r["exchange_job_id"] == "job-1"]
    assert len(ok) == 1 and ok[0]["state"] == "released"
    assert [d["decision"] for d in decisions if d["exchange_job_id"] == "job-1"] == ["proceed"]
    dead = [m.value or b"" for m in seen[dlq_t]]
    assert b"{broken" in dead
    assert any(b"job-missing" in v for v in dead)
    _assert_outputs_continue_the_trace(seen[dec_t] + seen[res_t])
    out_uid = ok[0]["deidentified_study_uid"]
    assert out_uid and out_uid != study
    client = clean_orthanc.dest.dicomweb()
    stored = client.retrieve_study(out_uid)
    assert len(stored) == 1
    assert str(stored[0].PatientName) != str(ds.PatientName)
    assert str(stored[0].StudyInstanceUID) == out_uid


def _assert_outputs_continue_the_trace(records: list[ConsumerRecord[bytes, bytes]]) -> None:
    """job-1's outputs carry a valid ``traceparent``: the input's trace id, a new span id."""
    job_1 = [m for m in records if b'"job-1"' in (m.value or b"")]
    assert len(job_1) == 2
    for record in job_1:
        value = dict(record.headers)["traceparent"].decode()
        version, trace_id, span_id, flags = value.split("-")
        assert (version, trace_id, flags) == ("00", TRACE_ID, "01")
        assert len(span_id) == 16 and span_id not in ("0" * 16, "00f067aa0ba902b7")
