"""Kafka intake: the aiokafka consumer group, manual commits once each job is durable.

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
from dxai.daemon.pipeline import Pipeline, RetryPolicy, with_retry
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
        self._consumer = self._new_consumer()
        self._connected = False
        self._broker_error: str | None = "not connected yet"
        self._committed: dict[TopicPartition, int] = {}
        self._lag_partitions: set[int] = set()
        self._lag_sampled = 0.0

    def _new_consumer(self) -> AIOKafkaConsumer:
        config = self.config
        return AIOKafkaConsumer(
            config.input_topic,
            bootstrap_servers=config.bootstrap_servers,
            group_id=config.group_id,
            client_id=config.client_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=config.session_timeout_ms,
            request_timeout_ms=config.request_timeout_ms,
        )

    def check(self) -> CheckResult:
        """Readiness: the broker answered the last probe and partitions are assigned."""
        if not self._connected:
            return CheckResult(False, f"broker not connected ({self._broker_error})")
        assigned = len(self._consumer.assignment())
        if assigned == 0 and self.health.require_partitions:
            return CheckResult(False, "broker connected; no partition assigned to this daemon")
        return CheckResult(True, f"broker connected; {assigned} partition(s) assigned")

    async def run(self, stop: asyncio.Event) -> None:
        """Connect (retrying until ``stop``), then consume until ``stop`` is set."""
        if not await self._connect(stop):
            return
        watch = asyncio.create_task(self._watch_broker(stop), name="kafka-broker-probe")
        try:
            while not stop.is_set():
                self._backpressure()
                batch = await self._consumer.getmany(timeout_ms=200, max_records=50)
                for tp, messages in batch.items():
                    await self._batch(tp, messages)
                await self._sample_lag()
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
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
        """
        if self.txn is None:
            await self._admit(messages)
            await self._consumer.commit({tp: messages[-1].offset + 1})
        else:
            async with self.txn.transaction():
                await self._admit(messages)
                await self.txn.send_offsets({tp: messages[-1].offset + 1})
        self._committed[tp] = messages[-1].offset + 1

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
            done = self._committed.get(tp)
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

    async def _admit(self, messages: list[ConsumerRecord[Any, Any]]) -> None:
        for msg in messages:
            where = TopicPartition(msg.topic, msg.partition)
            await self._handle(msg.value or b"", msg.headers, where, msg.offset)

    def _backpressure(self) -> None:
        assigned = self._consumer.assignment()
        if self.pipeline.in_flight >= self.config.max_in_flight_jobs:
            self._consumer.pause(*assigned)
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())

    async def _handle(
        self, raw: bytes, headers: Headers | None, where: TopicPartition, offset: int
    ) -> None:
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
                return
            log.info(
                "event admitted",
                extra={"status": admission, "offset": offset, "partition": where.partition},
            )


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
