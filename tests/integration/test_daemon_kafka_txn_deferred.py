"""Transactional outputs against the real broker: a daemon killed after a job's ``deferred``
decision and conclusion, before its final decision went out, sends the final decision after the
restart (the chaos run with seed 1825320258 lost 14: the deferred decision's committed record
was taken for the final decision's by ``reconcile_pending``)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient
from kafka_helpers import kafka_section, read_committed

from dxai.actors.outbound import ProcessorInfo
from dxai.configs.schema.root import PipelineConfig
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.jobs import JobRecord, JobStore, PendingOutput
from dxai.daemon.outputs.kafka_txn import TransactionalPublisher, reconcile_pending
from dxai.daemon.pipeline.finish import JobFinisher
from dxai.daemon.pipeline.outcome import StudyTally
from dxai.observability.metrics import Sensor

STUDY = "1.2.826.0.1.3680043.8.498.2"
INFO = ProcessorInfo(profile="basic", options=(), pixel_mode="never")


@pytest.fixture
async def config(kafka_bootstrap: str, kafka_topic: str) -> AsyncIterator[KafkaConfig]:
    """This test's transactional Kafka section; its output topics are deleted afterwards."""
    section = KafkaConfig(**kafka_section(kafka_bootstrap, kafka_topic, transactional=True))
    yield section
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        await admin.delete_topics([section.decisions_topic, section.results_topic])
    finally:
        await admin.close()


def _finisher(store: JobStore, pub: TransactionalPublisher) -> JobFinisher:
    pipeline = PipelineConfig(decision_deadline_s=0.01, job_deadline_s=60.0)
    return JobFinisher(store, pub, Sensor(), INFO, pipeline)


async def _job(store: JobStore, name: str) -> JobRecord:
    event = StudyEvent.model_validate(
        {
            "event_type": "study_received",
            "study_uid": STUDY,
            "destination": "dest",
            "exchange_job_id": name,
            "source": {"kind": "dicomweb"},
        }
    )
    claim = await store.claim(name, STUDY, "1", event.model_dump_json())
    await store.set_state(claim.job.key, "fetching")
    return await store.set_state(claim.job.key, "processing")


async def _deferred_then_concluded(
    store: JobStore, pub: TransactionalPublisher, job: JobRecord
) -> None:
    """What a slow job does: the deferred decision at the deadline, then its conclusion."""
    deadline = time.monotonic() + 30

    async def work(_job: JobRecord, _event: StudyEvent) -> StudyTally:
        while not (current := await store.get(job.key)) or not current.deferred_sent:
            assert time.monotonic() < deadline, "the deferred decision was not sent"
            await asyncio.sleep(0.05)
        return StudyTally(received=1, passed=1, released=1)

    await _finisher(store, pub).run_with_deadlines(job, work)


async def _restart_and_flush(store: JobStore, config: KafkaConfig, key: str) -> JobRecord:
    """The next incarnation: fence the old producer, settle pending outputs, flush the job."""
    async with TransactionalPublisher(config, store) as pub:
        await reconcile_pending(store, config)
        job = await store.get(key)
        assert job is not None
        return await _finisher(store, pub).flush(job)


async def _decisions(config: KafkaConfig, key: str) -> list[str]:
    """The decisions a read_committed reader sees for the job, in order."""
    records = await read_committed(
        config.bootstrap_servers, config.decisions_topic, time.monotonic() + 30
    )
    return [json.loads(m.value)["decision"] for m in records if m.key == key.encode()]


async def test_final_decision_survives_a_kill_after_deferred_and_conclusion(
    tmp_path: Path, config: KafkaConfig
) -> None:
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store, "deferred-then-killed")
        async with TransactionalPublisher(config, store) as pub:
            await _deferred_then_concluded(store, pub, job)
        # the daemon is killed here: the final decision and the results were never produced
        concluded = await store.get(job.key)
        assert concluded is not None and concluded.decision_json is not None
        assert not concluded.decision_sent and not concluded.results_sent
        settled = await _restart_and_flush(store, config, job.key)
        assert settled.decision_sent and settled.results_sent
        assert await store.pending_outputs() == []
    assert await _decisions(config, job.key) == ["deferred", "proceed"]


async def test_pending_decision_row_at_a_deferred_record_is_not_taken_for_the_final(
    tmp_path: Path, config: KafkaConfig
) -> None:
    """A job store written before the fix kept the deferred's position as kind ``decision``."""
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store, "legacy-pending-row")
        async with TransactionalPublisher(config, store) as pub:
            await _deferred_then_concluded(store, pub, job)
        (deferred,) = await read_committed(
            config.bootstrap_servers, config.decisions_topic, time.monotonic() + 30
        )
        await store.record_pending(
            PendingOutput(job.key, "decision", deferred.topic, deferred.partition, deferred.offset)
        )
        settled = await _restart_and_flush(store, config, job.key)
        assert settled.decision_sent and settled.results_sent
        assert await store.pending_outputs() == []
    assert await _decisions(config, job.key) == ["deferred", "proceed"]
