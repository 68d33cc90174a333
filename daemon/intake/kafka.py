"""Kafka intake (aiokafka consumer group, manual commits) and the Kafka output publisher."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, RecordMetadata, TopicPartition

from dxai.daemon.config.services import KafkaConfig
from dxai.daemon.errors import DxaiError, RetriableError, ServiceUnavailableError
from dxai.daemon.events import (
    DecisionEvent,
    ResultsEvent,
    TraceContext,
    dlq_headers,
    encode_event,
    header_value,
    trace_headers,
)
from dxai.daemon.lifecycle import AsyncLifecycle
from dxai.daemon.pipeline import Pipeline, RetryPolicy, with_retry
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from dxai.daemon.intake.kafka_txn import TransactionalPublisher

log = logging.getLogger("dxai.intake.kafka")


class KafkaPublisher(AsyncLifecycle):
    """Idempotent producer (acks=all) for decisions, results and dead letters."""

    def __init__(self, config: KafkaConfig, transactional_id: str | None = None) -> None:
        self.config = config
        self._started = False
        self._producer = AIOKafkaProducer(
            bootstrap_servers=config.bootstrap_servers,
            client_id=config.client_id,
            enable_idempotence=True,
            acks="all",
            request_timeout_ms=config.request_timeout_ms,
            transactional_id=transactional_id,
        )

    async def start(self) -> None:
        """Connect the producer; idempotent."""
        if self._started:
            return
        try:
            await self._producer.start()
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka producer: {type(exc).__name__}") from exc
        self._started = True

    async def stop(self) -> None:
        """Flush and close the producer; idempotent."""
        if self._started:
            self._started = False
            await self._producer.stop()

    async def _send(
        self, topic: str, value: bytes, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> RecordMetadata:
        try:
            return await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka produce: {type(exc).__name__}") from exc

    async def _output(
        self, kind: str, topic: str, event: DecisionEvent | ResultsEvent, ctx: TraceContext
    ) -> None:
        """Produce one job output keyed by job key (the transactional publisher wraps this)."""
        headers = trace_headers(ctx, [("dxai-job-key", event.job_key)])
        await self._send(topic, encode_event(event), event.job_key.encode(), headers)

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        """Produce to the decisions topic, keyed by job key."""
        await self._output("decision", self.config.decisions_topic, event, ctx)

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Produce to the results topic, keyed by job key."""
        await self._output("results", self.config.results_topic, event, ctx)

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        """Produce the original bytes to the DLQ with the reason in headers."""
        await self._send(self.config.dlq_topic, original, None, dlq_headers(reason, code, origin))


class KafkaIntake:
    """Consumes the input topic; commits each offset once its job is durable in the store."""

    def __init__(
        self,
        config: KafkaConfig,
        pipeline: Pipeline,
        sensor: Sensor,
        txn: TransactionalPublisher | None = None,
    ) -> None:
        self.config = config
        self.pipeline = pipeline
        self.sensor = sensor
        self.txn = txn
        self.retry = RetryPolicy(
            config.max_retries, config.retry_backoff_initial_s, config.retry_backoff_max_s
        )
        self._consumer = AIOKafkaConsumer(
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

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set; commits after each durable batch."""
        try:
            await self._consumer.start()
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka consumer: {type(exc).__name__}") from exc
        try:
            while not stop.is_set():
                self._backpressure()
                batch = await self._consumer.getmany(timeout_ms=200, max_records=50)
                for tp, messages in batch.items():
                    await self._batch(tp, messages)
        finally:
            await self._consumer.stop()

    async def _batch(self, tp: TopicPartition, messages: list[ConsumerRecord[Any, Any]]) -> None:
        """Admit a partition's messages (jobs durable), then commit the next offset.

        Transactional: the batch's dead letters and its offsets commit in one transaction.
        """
        if self.txn is None:
            await self._admit(messages)
            await self._consumer.commit({tp: messages[-1].offset + 1})
            return
        async with self.txn.transaction():
            await self._admit(messages)
            await self.txn.send_offsets({tp: messages[-1].offset + 1})

    async def _admit(self, messages: list[ConsumerRecord[Any, Any]]) -> None:
        for msg in messages:
            await self._handle(msg.value or b"", msg.headers, msg.topic, msg.partition, msg.offset)

    def _backpressure(self) -> None:
        assigned = self._consumer.assignment()
        if self.pipeline.in_flight >= self.config.max_in_flight_jobs:
            self._consumer.pause(*assigned)
        elif self._consumer.paused():
            self._consumer.resume(*self._consumer.paused())

    async def _handle(
        self, raw: bytes, headers: object, topic: str, partition: int, offset: int
    ) -> None:
        self.sensor.count("events_consumed", {"source": "kafka"})
        tp = header_value(headers, "traceparent")  # type: ignore[arg-type]
        origin = f"{topic}/{partition}/{offset}"
        try:
            admission = await with_retry(
                self.retry,
                lambda: self.pipeline.submit(
                    raw, tp.decode("ascii", "replace") if tp else None, origin
                ),
            )
        except RetriableError:
            raise
        except DxaiError as exc:
            await self.pipeline.parts.publisher.dead_letter(raw, str(exc), exc.code, origin)
            return
        log.info(
            "event admitted", extra={"status": admission, "offset": offset, "partition": partition}
        )
