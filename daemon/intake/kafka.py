"""Kafka intake: the aiokafka consumer group with manual commits.

``kafka.commit_policy: watermark`` (default): an input offset is committed once every job at or
below it on its partition concluded and its outputs were produced; the partitions' watermarks,
their state records and the hand-over between daemons live in :mod:`.ownership`
(docs/scaleout.md).  ``durable``: each offset is committed once its job is durable in this
node's job store.

The consumer connects with retries (backoff ``kafka.retry_backoff_initial_s`` ..
``retry_backoff_max_s``) until the broker answers or the daemon stops, so a pod started before
its broker waits, not ready, instead of crashing.  While it runs, the broker is probed every
``health.probe_interval_s`` (a metadata request on the consumer's own connections); ``check``
tells ``/readyz`` whether the broker answered and partitions are assigned.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from dxai.configs.errors import DxaiError, RetriableError
from dxai.configs.schema.services import HealthConfig, KafkaConfig
from dxai.daemon.events import parse_study_event
from dxai.daemon.intake.ownership import PartitionOwnership
from dxai.daemon.jobs import job_key
from dxai.daemon.outputs.kafka import KafkaPublisher
from dxai.daemon.pipeline import Admission, Pipeline, RetryPolicy, with_retry
from dxai.observability.health import CheckResult
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import extract_context

if TYPE_CHECKING:
    from dxai.daemon.outputs.kafka_txn import TransactionalPublisher

log = get_logger(__name__)
LAG_SAMPLE_S = 1.0
Headers = Sequence[tuple[str, bytes]]


class KafkaIntake:
    """Consumes the input topic; commits each offset once its job is durable in the store."""

    def __init__(
        self,
        config: KafkaConfig,
        pipeline: Pipeline,
        sensor: Sensor,
        txn: TransactionalPublisher | None = None,
        health: HealthConfig | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.sensor = sensor
        self.txn = txn
        self.health = health or HealthConfig()
        self.retry = RetryPolicy.from_config(config)
        self._connected = False
        self._broker_error: str | None = "not connected yet"
        self._committed: dict[TopicPartition, int] = {}
        self._lag_partitions: set[int] = set()
        self._lag_sampled = 0.0
        self._stop = asyncio.Event()
        self.ownership = self._ownership()
        self._consumer = self._new_consumer()

    def _ownership(self) -> PartitionOwnership | None:
        """Watermark commits when the policy asks for them and the outputs go to Kafka."""
        publisher = getattr(getattr(self.pipeline, "parts", None), "publisher", None)
        if self.config.commit_policy != "watermark" or not isinstance(publisher, KafkaPublisher):
            return None
        return PartitionOwnership(self.config, publisher, lambda: self._consumer, self._stop)

    def _new_consumer(self) -> AIOKafkaConsumer:
        config = self.config
        consumer = AIOKafkaConsumer(
            bootstrap_servers=config.bootstrap_servers,
            group_id=config.group_id,
            client_id=config.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=config.session_timeout_ms,
            request_timeout_ms=config.request_timeout_ms,
        )
        consumer.subscribe([config.input_topic], listener=self.ownership)
        return consumer

    def check(self) -> CheckResult:
        """Readiness: the broker answered the last probe and partitions are assigned."""
        if not self._connected:
            return CheckResult(False, f"broker not connected ({self._broker_error})")
        assigned = len(self._consumer.assignment())
        if assigned == 0 and self.health.require_partitions:
            return CheckResult(False, "broker connected; no partition assigned to this daemon")
        return CheckResult(True, f"broker connected; {assigned} partition(s) assigned")

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying until ``stop``), then consume until ``stop`` is set; under the
        watermark policy the partitions are handed over (running jobs get
        ``kafka.revoke_grace_s``) before the consumer leaves the group."""
        relay = asyncio.create_task(self._relay_stop(stop), name="kafka-stop-relay")
        try:
            if not await self._connect(stop):
                return
            await self._consume(stop)
        finally:
            relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relay

    async def _relay_stop(self, stop: asyncio.Event) -> None:
        await stop.wait()
        self._stop.set()

    async def _consume(self, stop: asyncio.Event) -> None:
        watch = asyncio.create_task(self._watch_broker(stop), name="kafka-broker-probe")
        try:
            while not stop.is_set():
                self._backpressure()
                batch = await self._consumer.getmany(timeout_ms=200, max_records=50)
                for tp, messages in batch.items():
                    await self._batch(tp, messages)
                if self.ownership is not None:
                    await self.ownership.flush_dirty()
                await self._sample_lag()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            if self.ownership is not None:
                await self.ownership.release_all()
            self._connected, self._broker_error = False, "consumer stopped"
            await self._consumer.stop()

    async def _connect(self, stop: asyncio.Event) -> bool:
        """Start the consumer, retrying with backoff; False when ``stop`` came first."""
        delay = self.config.retry_backoff_initial_s
        while not stop.is_set():
            try:
                started = await _unless_stopped(self._consumer.start(), stop)
            except KafkaError as exc:
                self._broker_error = type(exc).__name__
                log.warning("kafka broker unreachable", extra={"error_code": self._broker_error})
                await self._consumer.stop()
                self._consumer = self._new_consumer()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                delay = min(delay * 2, self.config.retry_backoff_max_s)
                continue
            if not started:
                break
            self._connected, self._broker_error = True, None
            return True
        await self._consumer.stop()
        return False

    async def _watch_broker(self, stop: asyncio.Event) -> None:
        """Ask the broker for metadata every probe interval; record whether it answered."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.health.probe_interval_s)
            if stop.is_set():
                return
            await self._probe_broker()

    async def _probe_broker(self) -> None:
        try:
            await asyncio.wait_for(self._consumer.topics(), timeout=self.health.probe_timeout_s)
        except (KafkaError, TimeoutError) as exc:
            if self._connected:
                log.warning("kafka broker lost", extra={"error_code": type(exc).__name__})
            self._connected, self._broker_error = False, type(exc).__name__
            return
        self._connected, self._broker_error = True, None

    async def _batch(self, tp: TopicPartition, messages: list[ConsumerRecord[Any, Any]]) -> None:
        """Admit a partition's messages (jobs durable), then commit the next offset.

        Transactional: the batch's dead letters and its offsets commit in one transaction.
        Watermark policy: the offset committed is the partition's watermark (:mod:`.ownership`).
        """
        if self.ownership is not None:
            await self._tracked_batch(self.ownership, tp, messages)
            return
        if self.txn is None:
            await self._admit(messages)
            await self._consumer.commit({tp: messages[-1].offset + 1})
        else:
            async with self.txn.transaction():
                await self._admit(messages)
                await self.txn.send_offsets({tp: messages[-1].offset + 1})
        self._committed[tp] = messages[-1].offset + 1

    async def _tracked_batch(
        self, own: PartitionOwnership, tp: TopicPartition, messages: list[ConsumerRecord[Any, Any]]
    ) -> None:
        """Admit messages of a rebuilt partition, holding each offset until its job concludes;
        commit the partition's snapshot when it changed (with the dead letters, transactional)."""
        if not await own.wait_owned(tp):
            return  # moved to another daemon meanwhile: its new owner reads these again
        if self.txn is None:
            await self._admit_tracked(own, messages)
            await own.commit(own.tracker.dirty())
            return
        async with self.txn.transaction():
            await self._admit_tracked(own, messages)
            await own.commit(own.tracker.dirty())

    async def _admit_tracked(
        self, own: PartitionOwnership, messages: list[ConsumerRecord[Any, Any]]
    ) -> None:
        tracker = own.tracker
        for msg in messages:
            topic, part, offset = msg.topic, msg.partition, msg.offset
            if tracker.seen_before(topic, part, offset):
                tracker.finish(topic, part, offset)  # concluded by a previous owner
                self.sensor.count("events_consumed", {"source": "kafka", "outcome": "duplicate"})
                continue
            raw = msg.value or b""
            key = self._job_key(raw)
            if key is not None:  # held before the job starts: it may conclude at once
                tracker.hold(topic, part, offset, key)
            where = TopicPartition(topic, part)
            admission = await self._handle(raw, msg.headers, where, offset)
            if key is None or admission in ("duplicate", "dead_letter"):
                tracker.finish(topic, part, offset)

    def _job_key(self, raw: bytes) -> str | None:
        """The job key an event will get (None: not a valid event, it is dead-lettered)."""
        try:
            event = parse_study_event(raw)
        except DxaiError:
            return None
        return job_key(event.exchange_job_id, event.study_uid, self.pipeline.config.version)

    async def _sample_lag(self) -> None:
        """``dxai_kafka_consumer_lag{partition}``: the last stable offset the broker reported
        minus what this daemon committed (its position before its first commit); at most once
        per ``LAG_SAMPLE_S``.  Partitions no longer assigned lose their series."""
        now = time.monotonic()
        if now - self._lag_sampled < LAG_SAMPLE_S:
            return
        self._lag_sampled = now
        assigned = self._consumer.assignment()
        for tp in assigned:
            end = self._consumer.last_stable_offset(tp)
            done = self._committed_offset(tp)
            if done is None:
                with contextlib.suppress(KafkaError, TimeoutError, AssertionError):
                    done = await asyncio.wait_for(self._consumer.position(tp), LAG_SAMPLE_S)
            if end is None or done is None:
                continue
            self.sensor.set_gauge("consumer_lag", float(max(0, end - done)), _part(tp))
        current = {tp.partition for tp in assigned}
        for gone in self._lag_partitions - current:
            self.sensor.forget("consumer_lag", {"partition": str(gone)})
        self._lag_partitions = current

    def _committed_offset(self, tp: TopicPartition) -> int | None:
        if self.ownership is not None:
            return self.ownership.committed.get(tp)
        return self._committed.get(tp)

    async def _admit(self, messages: list[ConsumerRecord[Any, Any]]) -> None:
        for msg in messages:
            where = TopicPartition(msg.topic, msg.partition)
            await self._handle(msg.value or b"", msg.headers, where, msg.offset)

    def _backpressure(self) -> None:
        """Pause every partition while ``max_in_flight_jobs`` run, and a partition whose
        uncommitted window reached ``max_uncommitted_offsets``; resume the others."""
        assigned = self._consumer.assignment()
        full = self.pipeline.in_flight >= self.config.max_in_flight_jobs
        own = self.ownership
        hold = {tp for tp in assigned if full or (own is not None and own.lagging(tp))}
        paused = self._consumer.paused()
        if hold - paused:
            self._consumer.pause(*(hold - paused))
        if paused - hold:
            self._consumer.resume(*(paused - hold))

    async def _handle(
        self, raw: bytes, headers: Headers | None, where: TopicPartition, offset: int
    ) -> Admission:
        """Admit one record in a ``kafka.receive`` span that continues the producer's trace
        (W3C headers, read by OpenTelemetry's propagator)."""
        origin = f"{where.topic}/{where.partition}/{offset}"
        attrs = {"topic": where.topic, "partition": where.partition, "offset": offset}
        parent = extract_context(headers)
        with self.sensor.span("kafka.receive", attrs, parent=parent, kind="consumer") as span:
            try:
                admission = await with_retry(
                    self.retry, lambda: self.pipeline.submit(raw, None, origin)
                )
            except RetriableError:
                raise
            except DxaiError as exc:
                span.fail(exc.code)
                await self.pipeline.dead_letter(raw, str(exc), exc.code, origin)
                return "dead_letter"
            log.info(
                "event admitted",
                extra={"status": admission, "offset": offset, "partition": where.partition},
            )
            return admission


def _part(tp: TopicPartition) -> dict[str, str]:
    return {"partition": str(tp.partition)}


async def _unless_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first (then ``work`` is cancelled): True if done."""
    task = asyncio.ensure_future(work)
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, KafkaError):
                await task
    if task.cancelled():
        return False
    task.result()
    return True
