"""Kafka helpers shared by the daemon's integration tests (real broker)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord


def kafka_section(bootstrap: str, topic: str, **extra: Any) -> dict[str, Any]:
    """The ``kafka`` config section for a test whose own topics all derive from ``topic``."""
    return {
        "bootstrap_servers": bootstrap,
        "group_id": f"g-{topic}",
        "input_topic": topic,
        "decisions_topic": f"{topic}.decisions",
        "results_topic": f"{topic}.results",
        "dlq_topic": f"{topic}.dlq",
        "state_topic": f"{topic}.state",
        **extra,
    }


async def partitions(bootstrap: str, topic: str) -> set[int]:
    """The partitions of ``topic`` (auto-created by the broker when nobody wrote to it yet)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return set(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def read_committed(
    bootstrap: str, topic: str, until: float
) -> list[ConsumerRecord[bytes, bytes]]:
    """Every record a ``read_committed`` reader sees in ``topic`` up to its end offsets."""
    parts = [TopicPartition(topic, p) for p in sorted(await partitions(bootstrap, topic))]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > until:
                pytest.fail(f"could not read {topic} to its end")
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(m for msgs in batch.values() for m in msgs)
        return records
    finally:
        await consumer.stop()
