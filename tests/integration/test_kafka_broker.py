"""The real Kafka broker (KRaft, single node): idempotent produce, group consume, manual commit."""

from __future__ import annotations

import asyncio
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

N_MESSAGES = 60
DEADLINE_S = 30.0


def _message(i: int) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    key = f"key-{i % 7}".encode()
    value = f"value-{i}-".encode() + bytes(range(256))
    headers = [("index", str(i).encode()), ("kind", b"test"), ("empty", b"")]
    return key, value, headers


async def _produce_all(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=True, acks="all", linger_ms=5
    )
    await producer.start()
    try:
        futures = []
        for i in range(N_MESSAGES):
            key, value, headers = _message(i)
            futures.append(await producer.send(topic, value=value, key=key, headers=headers))
        metadata = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    assert len(metadata) == N_MESSAGES
    assert all(m.topic == topic and m.offset >= 0 for m in metadata)


def _consumer(bootstrap: str, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def _consume(consumer: AIOKafkaConsumer, count: int) -> list[ConsumerRecord]:
    """Poll until ``count`` records arrived or the deadline passes."""
    records: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while len(records) < count and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for batch in batches.values():
            records.extend(batch)
    return records


async def test_idempotent_produce_then_group_consume(
    kafka_bootstrap: str, kafka_topic: str
) -> None:
    await _produce_all(kafka_bootstrap, kafka_topic)
    consumer = _consumer(kafka_bootstrap, kafka_topic, f"test-group-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    try:
        records = await _consume(consumer, N_MESSAGES)
        await consumer.commit()
    finally:
        await consumer.stop()

    assert len(records) == N_MESSAGES
    by_index = {int(dict(r.headers)["index"]): r for r in records}
    assert sorted(by_index) == list(range(N_MESSAGES))
    for i, record in by_index.items():
        key, value, headers = _message(i)
        assert record.key == key
        assert record.value == value
        assert list(record.headers) == headers
    # one key -> one partition, and within a partition the producer's order is kept
    partitions_per_key: dict[bytes | None, set[int]] = {}
    for record in records:
        partitions_per_key.setdefault(record.key, set()).add(record.partition)
    assert all(len(p) == 1 for p in partitions_per_key.values())
    for partition in {r.partition for r in records}:
        indices = [int(dict(r.headers)["index"]) for r in records if r.partition == partition]
        assert indices == sorted(indices)


async def _wait_caught_up(
    consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
) -> list[ConsumerRecord]:
    """Poll until all ``partitions`` are assigned and at their end; return any records seen."""
    extra: list[ConsumerRecord] = []
    end = await consumer.end_offsets(list(partitions))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while loop.time() < deadline:
        for batch in (await consumer.getmany(timeout_ms=300)).values():
            extra.extend(batch)
        if consumer.assignment() == partitions:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if positions == end:
                return extra
    raise AssertionError(f"consumer not caught up in {DEADLINE_S}s: {consumer.assignment()}")


async def test_committed_group_gets_nothing_new(kafka_bootstrap: str, kafka_topic: str) -> None:
    await _produce_all(kafka_bootstrap, kafka_topic)
    group = f"test-group-{uuid.uuid4().hex[:8]}"
    first = _consumer(kafka_bootstrap, kafka_topic, group)
    await first.start()
    try:
        assert len(await _consume(first, N_MESSAGES)) == N_MESSAGES
        await first.commit()
    finally:
        await first.stop()

    second = _consumer(kafka_bootstrap, kafka_topic, group)
    await second.start()
    try:
        partitions = {TopicPartition(kafka_topic, p) for p in range(3)}  # kafka_topic has 3
        extra = await _wait_caught_up(second, partitions)
        committed = [await second.committed(tp) for tp in partitions]
    finally:
        await second.stop()
    assert extra == []
    assert sum(c or 0 for c in committed) == N_MESSAGES
