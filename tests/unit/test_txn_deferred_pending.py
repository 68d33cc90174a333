"""Transactional outputs: a committed ``deferred`` decision never marks the final decision sent.

Regression of the chaos run (seed 1825320258) that lost 14 final decisions: the deferred
decision's position was kept as the job's pending *decision*; a SIGKILL after the job concluded
but before its final decision was produced left that row behind, and the restarted daemon's
``reconcile_pending`` found the (committed) deferred record there, marked the final decision
sent, and flushed the results alone.  Here the broker is an in-memory fake (transactions:
open / committed / aborted records; a ``read_committed`` consumer) and everything else is the
daemon's own code (job store, transactional publisher, reconcile, job finisher).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiokafka.structs import RecordMetadata, TopicPartition

from dxai.actors.outbound import ProcessorInfo
from dxai.configs.schema.root import PipelineConfig
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import DecisionEvent, ResultsEvent, StudyEvent
from dxai.daemon.jobs import JobRecord, JobStore, PendingOutput
from dxai.daemon.outputs import kafka, kafka_txn
from dxai.daemon.outputs.kafka_txn import TransactionalPublisher, reconcile_pending
from dxai.daemon.pipeline.finish import JobFinisher
from dxai.daemon.pipeline.outcome import StudyTally
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import TraceContext, Tracer

STUDY = "1.2.826.0.1.3680043.8.498.77"
CONFIG = KafkaConfig(
    bootstrap_servers="fake:9092",
    input_topic="in",
    decisions_topic="in.decisions",
    results_topic="in.results",
    dlq_topic="in.dlq",
    transactional=True,
)
INFO = ProcessorInfo(profile="basic", options=(), pixel_mode="never")


@dataclass
class Rec:
    """One record of the fake log: what a consumer reads, and its transaction's fate."""

    offset: int
    key: bytes | None
    value: bytes
    state: str = "open"  # open | committed | aborted


@dataclass
class FakeBroker:
    """Partition logs shared by every producer and consumer of a test."""

    logs: dict[tuple[str, int], list[Rec]] = field(default_factory=dict)
    committed: asyncio.Event = field(default_factory=asyncio.Event)

    def visible(self, topic: str) -> list[dict[str, Any]]:
        """The committed records of ``topic`` (all partitions), decoded."""
        return [
            json.loads(r.value)
            for (t, _p), log in sorted(self.logs.items())
            if t == topic
            for r in log
            if r.state == "committed"
        ]


class FakeProducer:
    """The transactional part of AIOKafkaProducer the publisher uses."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.open: list[Rec] = []
        for log in broker.logs.values():  # a new incarnation fences the old one
            for rec in log:
                if rec.state == "open":
                    rec.state = "aborted"

    async def begin_transaction(self) -> None:
        self.open = []

    async def commit_transaction(self) -> None:
        for rec in self.open:
            rec.state = "committed"
        self.broker.committed.set()

    async def abort_transaction(self) -> None:
        for rec in self.open:
            rec.state = "aborted"

    async def send_and_wait(
        self,
        topic: str,
        value: bytes,
        key: bytes | None = None,
        headers: object = None,
        partition: int | None = None,
    ) -> RecordMetadata:
        part = 0 if partition is None else partition
        log = self.broker.logs.setdefault((topic, part), [])
        rec = Rec(len(log), key, value)
        log.append(rec)
        self.open.append(rec)
        return RecordMetadata(topic, part, TopicPartition(topic, part), rec.offset, -1, 0, 0)


class FakeConsumer:
    """A ``read_committed`` consumer over the fake logs (what ``reconcile_pending`` uses)."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.positions: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assign(self, tps: list[TopicPartition]) -> None:
        self.positions = dict.fromkeys(tps, 0)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        return self.positions[tp]

    async def getmany(self, tp: TopicPartition, timeout_ms: int = 0) -> dict[Any, list[Rec]]:
        log = self.broker.logs.get((tp.topic, tp.partition), [])
        for rec in log[self.positions[tp] :]:
            assert rec.state != "open", "the old producer was fenced: nothing stays open"
            if rec.state == "committed":
                self.positions[tp] = rec.offset + 1
                return {tp: [rec]}
        self.positions[tp] = len(log)
        return {}


@pytest.fixture
def broker(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    """A fresh fake broker: the publishers' producers and ``reconcile_pending``'s consumer
    talk to it instead of a real one."""
    fake = FakeBroker()
    monkeypatch.setattr(kafka, "AIOKafkaProducer", lambda **_kw: FakeProducer(fake))
    monkeypatch.setattr(kafka_txn, "AIOKafkaConsumer", lambda **_kw: FakeConsumer(fake))
    return fake


def _publisher(store: JobStore, broker: FakeBroker) -> TransactionalPublisher:
    """A daemon incarnation's publisher (its producer fences the previous one)."""
    pub = TransactionalPublisher(CONFIG, store)
    assert isinstance(pub._producer, FakeProducer) and pub._producer.broker is broker
    return pub


def _finisher(store: JobStore, pub: TransactionalPublisher) -> JobFinisher:
    config = PipelineConfig(decision_deadline_s=0.01, job_deadline_s=60.0)
    return JobFinisher(store, pub, Sensor(), INFO, config)


async def _job(store: JobStore) -> JobRecord:
    event = StudyEvent.model_validate(
        {
            "event_type": "study_received",
            "study_uid": STUDY,
            "destination": "dest",
            "exchange_job_id": "lost-decision",
            "source": {"kind": "dicomweb"},
        }
    )
    claim = await store.claim("lost-decision", STUDY, "1", event.model_dump_json())
    await store.set_state(claim.job.key, "fetching")
    return await store.set_state(claim.job.key, "processing")


def _decision(job: JobRecord, decision: str = "proceed") -> DecisionEvent:
    return DecisionEvent(
        exchange_job_id=job.exchange_job_id,
        study_uid=STUDY,
        job_key=job.key,
        pipeline_version="1",
        decision=decision,
        partial=decision == "deferred",
    )


def _deferred(job: JobRecord) -> DecisionEvent:
    return _decision(job, "deferred")


def _trace() -> TraceContext:
    with Tracer().span("test") as span:
        return span.context


def _decisions(broker: FakeBroker) -> list[str]:
    return [d["decision"] for d in broker.visible(CONFIG.decisions_topic)]


async def _restart_and_flush(store: JobStore, broker: FakeBroker, job: JobRecord) -> JobRecord:
    """The next incarnation: fence, settle pending outputs, flush the job's outbox."""
    pub = _publisher(store, broker)
    await reconcile_pending(store, CONFIG)
    current = await store.get(job.key)
    assert current is not None
    return await _finisher(store, pub).flush(current)


async def test_kill_after_deferred_and_conclusion_still_sends_the_final_decision(
    tmp_path: Path, broker: FakeBroker
) -> None:
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store)
        finisher = _finisher(store, _publisher(store, broker))

        async def work(_job: JobRecord, _event: StudyEvent) -> StudyTally:
            await asyncio.wait_for(broker.committed.wait(), 10)  # the deferred went out
            return StudyTally(received=1, passed=1, released=1)

        await finisher.run_with_deadlines(job, work)  # deferred sent, job concluded
        concluded = await store.get(job.key)
        assert concluded is not None and concluded.deferred_sent and not concluded.decision_sent
        assert _decisions(broker) == ["deferred"]
        # SIGKILL here: the final decision and the results were never produced
        settled = await _restart_and_flush(store, broker, job)
        assert settled.decision_sent and settled.results_sent
        assert await store.pending_outputs() == []
    assert _decisions(broker) == ["deferred", "proceed"]
    assert [r["state"] for r in broker.visible(CONFIG.results_topic)] == ["released"]


async def test_kill_before_the_deferred_was_marked_sent_settles_it_as_deferred(
    tmp_path: Path, broker: FakeBroker
) -> None:
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store)
        await _publish_deferred(store, broker, job)
        # SIGKILL before mark_deferred_sent: the deferred decision is pending, as its own kind
        assert [p.kind for p in await store.pending_outputs()] == ["deferred"]
        pub = await _reconciled_as_deferred(store, broker, job)
        await store.conclude(job.key, "released", _final(job), _results_json(job))
        current = await store.get(job.key)
        assert current is not None
        await _finisher(store, pub).flush(current)
    assert _decisions(broker) == ["deferred", "proceed"]


async def test_a_pending_decision_row_at_a_deferred_record_settles_the_deferred_only(
    tmp_path: Path, broker: FakeBroker
) -> None:
    """A job store written by the version before the fix (the row kind was ``decision``)."""
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        job = await _job(store)
        await _publish_deferred(store, broker, job)
        (row,) = await store.pending_outputs()
        await store.clear_pending(job.key, row.kind)
        await store.record_pending(
            PendingOutput(job.key, "decision", row.topic, row.partition, row.offset)
        )
        # SIGKILL here (the job still running); the next incarnation settles the row
        pub = await _reconciled_as_deferred(store, broker, job)
        concluded = await store.conclude(job.key, "released", _final(job), _results_json(job))
        flushed = await _finisher(store, pub).flush(concluded)
        assert flushed.decision_sent and flushed.results_sent
    assert _decisions(broker) == ["deferred", "proceed"]


async def _publish_deferred(store: JobStore, broker: FakeBroker, job: JobRecord) -> None:
    """Record the job's deferred decision and produce it (not yet marked sent)."""
    deferred = _deferred(job)
    await store.record_deferred(job.key, deferred.model_dump_json())
    await _publisher(store, broker).decision(deferred, _trace())


async def _reconciled_as_deferred(
    store: JobStore, broker: FakeBroker, job: JobRecord
) -> TransactionalPublisher:
    """A restart's reconcile: the one pending row settles the deferred decision only."""
    pub = _publisher(store, broker)
    assert await reconcile_pending(store, CONFIG) == 1
    settled = await store.get(job.key)
    assert settled is not None and settled.deferred_sent and not settled.decision_sent
    assert await store.pending_outputs() == []
    return pub


def _final(job: JobRecord) -> str:
    return _decision(job).model_dump_json()


def _results_json(job: JobRecord) -> str:
    return ResultsEvent(
        exchange_job_id=job.exchange_job_id,
        study_uid=STUDY,
        job_key=job.key,
        pipeline_version="1",
        state="released",
    ).model_dump_json()
