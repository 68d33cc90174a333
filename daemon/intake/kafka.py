"""Kafka intake: the aiokafka consumer group, manual commits once each job is durable."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from dxai.configs.errors import DxaiError, RetriableError, ServiceUnavailableError
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import (
    header_value,
)
from dxai.daemon.pipeline import Pipeline, RetryPolicy, with_retry
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from dxai.daemon.outputs.kafka_txn import TransactionalPublisher

log = get_logger(__name__)


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
        self.retry = RetryPolicy.from_config(config)
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
            await self.pipeline.dead_letter(raw, str(exc), exc.code, origin)
            return
        log.info(
            "event admitted", extra={"status": admission, "offset": offset, "partition": partition}
        )
