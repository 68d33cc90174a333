"""Kafka transactions (``kafka.transactional: true``): exactly-once outputs and input offsets.

Everything the daemon produces goes through one transactional producer
(``transactional_id`` = ``<group_id>.<client_id>``: stable across restarts, unique per daemon
instance), one transaction at a time:

- intake: per consumed batch, the dead letters of bad events and the batch's input offsets
  (``send_offsets_to_transaction``) commit together, after every job of the batch is durable in
  the job store (``Pipeline.submit`` returned);
- outputs: each decision / results event is its own transaction; before it commits, the record's
  position is written to the job store (``pending_outputs``).  After a crash the restarted
  producer fences the old one (its open transaction is aborted), and :func:`reconcile_pending`
  reads each pending position with a ``read_committed`` consumer: committed → marked sent (not
  produced again), aborted → produced again.  A ``read_committed`` consumer therefore sees each
  output exactly once.  A ``deferred`` decision is pending as its own kind (``deferred``): its
  committed record marks the deferred decision sent, never the final one on the same topic.

Under ``kafka.commit_policy: watermark`` a job's **final decision and its results go in one
transaction** (the results are read from the job store, recorded as pending with the decision;
the finisher's later ``results`` call then produces nothing), together with the input
partition's new watermark (state record + ``send_offsets_to_transaction``, added by the
intake's :class:`~dxai.daemon.outputs.kafka.ConclusionHooks`).  A ``read_committed`` reader
therefore never sees a final decision without its results, and the input offset of a job is
committed exactly when its outputs are.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, RecordMetadata

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import (
    DecisionEvent,
    ResultsEvent,
    encode_event,
    trace_headers,
)
from dxai.daemon.jobs import JobStore, PendingOutput
from dxai.daemon.outputs.kafka import KafkaPublisher
from dxai.observability.logging import get_logger
from dxai.observability.tracing import TraceContext

log = get_logger(__name__)
RECONCILE_TIMEOUT_S = 60.0


def transactional_id(config: KafkaConfig) -> str:
    """The producer's transactional id: the same after a restart, distinct per instance."""
    return f"{config.group_id}.{config.client_id}"


async def _step(call: Awaitable[None]) -> None:
    """Await one transaction call; Kafka errors become ``ServiceUnavailableError``."""
    try:
        await call
    except KafkaError as exc:
        raise ServiceUnavailableError(f"kafka transaction: {type(exc).__name__}") from exc


class TransactionalPublisher(KafkaPublisher):
    """The Kafka publisher with every send inside a transaction (see the module docstring)."""

    def __init__(self, config: KafkaConfig, store: JobStore) -> None:
        super().__init__(config, transactional_id(config))
        self.store = store
        self._lock = asyncio.Lock()
        self._owner: asyncio.Task[object] | None = None
        self._paired: dict[str, ResultsEvent] = {}
        self._on_commit: list[Callable[[], None]] = []

    async def start(self) -> None:
        """Connect and fence a previous incarnation (aborts its open transaction); idempotent."""
        if self._started:
            return
        await super().start()
        async with self.transaction():
            pass

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        """One transaction (re-entrant within the task that opened it); aborted on error."""
        task = asyncio.current_task()
        if task is not None and task is self._owner:
            yield
            return
        async with self._lock:
            self._owner, self._on_commit = task, []
            try:
                await _step(self._producer.begin_transaction())
                try:
                    yield
                except BaseException:
                    await _step(self._producer.abort_transaction())
                    raise
                await _step(self._producer.commit_transaction())
                for applied in self._on_commit:  # still under the lock: before the next one
                    applied()
            finally:
                self._owner, self._on_commit = None, []

    def on_commit(self, applied: Callable[[], None]) -> None:
        """Call ``applied`` once the current transaction committed (never if it aborts)."""
        self._on_commit.append(applied)

    async def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> RecordMetadata:
        async with self.transaction():
            return await super()._send(topic, value, key, headers)

    async def _output(
        self, kind: str, topic: str, event: DecisionEvent | ResultsEvent, ctx: TraceContext
    ) -> None:
        headers = trace_headers(ctx, [("dxai-job-key", event.job_key)])
        async with self.transaction():
            meta = await super()._send(topic, encode_event(event), event.job_key.encode(), headers)
            await self.store.record_pending(
                PendingOutput(event.job_key, kind, meta.topic, meta.partition, meta.offset)
            )

    async def send_state(self, topic: str, partition: int, key: bytes, value: bytes) -> int:
        """Produce one state record inside the current (or its own) transaction."""
        async with self.transaction():
            return await super().send_state(topic, partition, key, value)

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        """A final decision goes out with its results (and the watermark) in one transaction
        when intake hooks are registered; a ``deferred`` one alone."""
        if self.hooks is None or event.decision == "deferred":
            await super().decision(event, ctx)
            return
        self.hooks.check_owned(event.job_key)
        paired = await self._results_of(event)
        async with self.transaction():
            await self._output("decision", self.config.decisions_topic, event, ctx)
            if paired is not None:
                await self._output("results", self.config.results_topic, paired, ctx)
                await self.hooks.concluded(event.job_key)
        if paired is not None:
            self._paired[event.job_key] = paired

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Nothing to produce when the results went out with the final decision."""
        if self._paired.pop(event.job_key, None) == event:
            return
        async with self.transaction():
            await super().results(event, ctx)

    async def _results_of(self, event: DecisionEvent) -> ResultsEvent | None:
        """The unsent results recorded with this final decision (same conclusion), or None."""
        job = await self.store.get(event.job_key)
        if job is None or job.results_json is None or job.results_sent:
            return None
        if (
            job.decision_json is None
            or DecisionEvent.model_validate_json(job.decision_json) != event
        ):
            return None  # a review replaced the conclusion meanwhile: sent separately
        return ResultsEvent.model_validate_json(job.results_json)

    async def send_offsets(self, offsets: Mapping[TopicPartition, int | tuple[int, str]]) -> None:
        """Add consumed offsets (next offset to read) to the current transaction."""
        try:
            await self._producer.send_offsets_to_transaction(dict(offsets), self.config.group_id)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka offsets: {type(exc).__name__}") from exc


async def _committed(
    consumer: AIOKafkaConsumer, item: PendingOutput, deadline: float
) -> ConsumerRecord[bytes, bytes] | None:
    """The record at ``item``'s position when a read_committed reader sees it, else None."""
    tp = TopicPartition(item.topic, item.partition)
    consumer.assign([tp])
    consumer.seek(tp, item.offset)
    while time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500)
        records = batch.get(tp, [])
        if records:  # the first committed record at or after the position
            return records[0] if records[0].offset == item.offset else None
        if await consumer.position(tp) > item.offset:
            return None  # skipped: the transaction was aborted
    raise ServiceUnavailableError("kafka: a pending output's transaction did not settle")


def _kind_of(item: PendingOutput, record: ConsumerRecord[bytes, bytes]) -> str:
    """What the committed record at ``item``'s position is: a job store written before the
    ``deferred`` kind existed kept a deferred decision's position as kind ``decision``, and
    that record must not mark the final decision sent."""
    if item.kind != "decision" or record.value is None:
        return item.kind
    try:
        value = json.loads(record.value)
    except ValueError:
        return item.kind
    deferred = isinstance(value, dict) and value.get("decision") == "deferred"
    return "deferred" if deferred else item.kind


async def _mark_sent(store: JobStore, key: str, kind: str) -> None:
    """Record that the job's output of ``kind`` was committed (clears its pending position)."""
    if kind == "deferred":
        await store.mark_deferred_sent(key)
    elif kind == "decision":
        await store.mark_decision_sent(key)
    else:
        await store.mark_results_sent(key)


async def reconcile_pending(store: JobStore, config: KafkaConfig) -> int:
    """Settle outputs left pending by a crash (call after the producer fenced the old one)."""
    pending = await store.pending_outputs()
    if not pending:
        return 0
    consumer = AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        request_timeout_ms=config.request_timeout_ms,
    )
    try:
        await consumer.start()
    except KafkaError as exc:
        raise ServiceUnavailableError(f"kafka consumer: {type(exc).__name__}") from exc
    try:
        deadline = time.monotonic() + RECONCILE_TIMEOUT_S
        for item in pending:
            record = await _committed(consumer, item, deadline)
            kind = None if record is None else _kind_of(item, record)
            if kind != item.kind:  # aborted (sent again), or not the output it stood for
                await store.clear_pending(item.job_key, item.kind)
            if kind is not None:
                await _mark_sent(store, item.job_key, kind)
        log.info("pending outputs settled", extra={"count": len(pending)})
        return len(pending)
    finally:
        await consumer.stop()
