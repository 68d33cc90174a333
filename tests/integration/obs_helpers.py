"""The daemon in Kafka mode on the real broker, fed from a local folder (no Orthanc needed).

Shared by the observability tests: the sample study copied to ``<tmp>/inbox/<name>``, a
``sources.inbox`` local source, folder destinations (``out``; ``review-desk``, whose policy
rule holds every study for review), the daemon in the test's loop, a producer and a collector.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord
from kafka_helpers import kafka_section

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.observability.metrics import Sensor

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample-study"
START_S = 120.0
Seen = dict[str, list[ConsumerRecord[bytes, bytes]]]
Headers = list[tuple[str, bytes]]


def sample_truth() -> dict[str, Any]:
    """The sample study's ground truth (UIDs, planted PHI strings, burned-in text)."""
    truth: dict[str, Any] = json.loads((SAMPLE / "ground_truth.json").read_text())
    return truth


def sample_study(tmp: Path, name: str = "study") -> str:
    """Copy the sample studies to ``<tmp>/inbox/<name>``; the Study Instance UID of the CT
    study among them (two instances with burned-in PHI text: presence pass, then OCR)."""
    shutil.copytree(SAMPLE, tmp / "inbox" / name, ignore=shutil.ignore_patterns("*.json"))
    return str(sample_truth()["files"][0]["study_instance_uid"])


def obs_config(
    tmp: Path, bootstrap: str, topic: str, *, pixels: str = "auto", **extra: Any
) -> DxaiConfig:
    """Kafka mode, local source ``inbox``, folder destinations ``out`` and ``review-desk``."""
    data: dict[str, Any] = {
        "mode": "production",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": pixels},
        "pipeline": {"decision_deadline_s": 120, "cpu_workers": 2},
        "kafka": kafka_section(bootstrap, topic, max_retries=1, retry_backoff_initial_s=0.1),
        "sources": {"inbox": {"kind": "local", "root": str(tmp / "inbox")}},
        "destinations": {
            "out": {"kind": "folder", "path": str(tmp / "out")},
            "review-desk": {"kind": "folder", "path": str(tmp / "review-out")},
        },
        "policy": {
            "rules": [
                {
                    "name": "review-desk",
                    "match": {"destination": ["review-desk"]},
                    "then": {"review": {"required_always": True}},
                }
            ]
        },
        "metrics": {"enabled": False},
    }
    data.update(extra)
    return DxaiConfig.model_validate(data)


def study_event(study_uid: str, job: str, path: str = "study", destination: str = "out") -> bytes:
    """A ``study_scheduled_for_exchange`` event reading ``inbox/<path>``."""
    return json.dumps(
        {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": study_uid,
            "destination": destination,
            "exchange_job_id": job,
            "source": {"kind": "local", "name": "inbox", "path": path},
        }
    ).encode()


@asynccontextmanager
async def kafka_daemon(config: DxaiConfig, sensor: Sensor) -> AsyncIterator[DaemonHandle]:
    """The daemon in this test's loop until the block ends (then stopped and awaited)."""
    stop = asyncio.Event()
    ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(config, stop, sensor, ready=ready.set_result))
    await asyncio.wait({ready, task}, timeout=START_S, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.cancel()
        pytest.fail("daemon did not start")
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, START_S)


async def produce(bootstrap: str, topic: str, records: Sequence[tuple[bytes, Headers]]) -> None:
    """Send ``(value, headers)`` records to ``topic`` and wait for each acknowledgement."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in records:
            await producer.send_and_wait(topic, value, headers=headers)
    finally:
        await producer.stop()


def output_topics(topic: str) -> list[str]:
    """The decisions, results and dead-letter topics of a test whose input is ``topic``."""
    return [f"{topic}.{suffix}" for suffix in ("decisions", "results", "dlq")]


async def collect(
    bootstrap: str, topics: list[str], want: Callable[[Seen], bool], deadline_s: float = 240
) -> Seen:
    """Read ``topics`` from the beginning until ``want(seen)`` (fails at the deadline)."""
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
        end = time.monotonic() + deadline_s
        while not want(seen):
            if time.monotonic() > end:
                pytest.fail(
                    f"outputs not seen before the deadline: {[len(v) for v in seen.values()]}"
                )
            batch = await consumer.getmany(timeout_ms=500)
            for tp, msgs in batch.items():
                seen[tp.topic].extend(msgs)
    finally:
        await consumer.stop()
    return seen


def job_records(records: list[ConsumerRecord[bytes, bytes]], job: str) -> list[dict[str, Any]]:
    """The JSON bodies of the records of ``job`` (by exchange job id)."""
    bodies = [json.loads(r.value or b"{}") for r in records]
    return [b for b in bodies if b.get("exchange_job_id") == job]
