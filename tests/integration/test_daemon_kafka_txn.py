"""Transactional outputs against the real broker: a crash between commit and 'sent' is settled."""

from __future__ import annotations

import asyncio
import contextlib
import time
from pathlib import Path

from kafka_helpers import kafka_section, read_committed

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import DecisionEvent, ResultsEvent
from dxai.daemon.jobs import JobRecord, JobStore
from dxai.daemon.outputs.kafka_txn import TransactionalPublisher, reconcile_pending
from dxai.observability.tracing import TraceContext, Tracer

STUDY = "1.2.826.0.1.3680043.8.498.1"


def _config(bootstrap: str, topic: str) -> KafkaConfig:
    return KafkaConfig(**kafka_section(bootstrap, topic, transactional=True))


async def _job(store: JobStore, name: str) -> JobRecord:
    claim = await store.claim(name, STUDY, "1", "{}")
    return claim.job


def _decision(job: JobRecord) -> DecisionEvent:
    return DecisionEvent(
        exchange_job_id=job.exchange_job_id,
        study_uid=STUDY,
        job_key=job.key,
        pipeline_version="1",
        decision="proceed",
    )


def _results(job: JobRecord) -> ResultsEvent:
    return ResultsEvent(
        exchange_job_id=job.exchange_job_id,
        study_uid=STUDY,
        job_key=job.key,
        pipeline_version="1",
        state="released",
    )


async def _committed_keys(bootstrap: str, topic: str) -> list[bytes]:
    """Keys of every record a read_committed reader sees in partition-ordered ``topic``."""
    records = await read_committed(bootstrap, topic, time.monotonic() + 30)
    return [m.key or b"" for m in records]


async def test_committed_output_is_marked_sent_not_resent(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    config = _config(kafka_bootstrap, kafka_topic)
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store, "txn-committed")
        async with TransactionalPublisher(config, store) as pub:
            await pub.decision(_decision(job), new_trace())  # "crash" before mark_decision_sent
        assert [p.kind for p in await store.pending_outputs()] == ["decision"]
        async with TransactionalPublisher(config, store):  # the restarted daemon
            assert await reconcile_pending(store, config) == 1
        settled = await store.get(job.key)
        assert settled is not None and settled.decision_sent and not settled.results_sent
        assert await store.pending_outputs() == []
    keys = await _committed_keys(kafka_bootstrap, config.decisions_topic)
    assert keys == [job.key.encode()]


async def test_aborted_output_is_sent_again(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str
) -> None:
    config = _config(kafka_bootstrap, kafka_topic)
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store, "txn-aborted")
        old = await TransactionalPublisher(config, store).__aenter__()
        inside, never = asyncio.Event(), asyncio.Event()

        async def crashing() -> None:
            async with old.transaction():
                await old.results(_results(job), new_trace())
                inside.set()
                await never.wait()  # the process dies here, the transaction stays open

        hung = asyncio.create_task(crashing())
        await asyncio.wait_for(inside.wait(), 30)
        assert [p.kind for p in await store.pending_outputs()] == ["results"]
        async with TransactionalPublisher(config, store) as new:  # fences the old producer
            assert await reconcile_pending(store, config) == 1
            settled = await store.get(job.key)
            assert settled is not None and not settled.results_sent
            assert await store.pending_outputs() == []
            await new.results(_results(job), new_trace())  # what flush() does next
            await store.mark_results_sent(job.key)
        hung.cancel()
        with contextlib.suppress(asyncio.CancelledError, ServiceUnavailableError):
            await hung
        with contextlib.suppress(Exception):  # the fenced producer may refuse to stop cleanly
            await old.__aexit__(None, None, None)
    keys = await _committed_keys(kafka_bootstrap, config.results_topic)
    assert keys == [job.key.encode()]


def new_trace() -> TraceContext:
    """The context of a fresh root span (what a publish span hands the publisher)."""
    with Tracer().span("test") as span:
        return span.context
