"""The state topic: what a daemon newly assigned an input partition rebuilds before consuming.

Every commit of an input partition's watermark writes, in the same Kafka transaction as the
offsets (``kafka.transactional``), one record to the state topic (``kafka.state_topic``): key
``<group_id>/<input topic>/<partition>``, value the partition's :class:`Snapshot` (watermark +
offsets above it already concluded), on state partition ``partition % state partitions``.  The
committed offset's metadata (``dxai-state:<offset>``) says where that record is, so a reader
starts there instead of at the beginning of the state partition.

:func:`load_snapshots` reads each state partition with ``read_committed`` up to the *high
watermark* it had when the partitions were assigned: a ``read_committed`` reader only gets
there once every transaction with a record before it has committed or aborted.  A dead daemon's
open transaction (its job's outputs and the offsets that go with them) is therefore settled
(aborted by the broker after ``kafka.transaction_timeout_ms``) before the new owner decides
which events still need a job: the snapshot it reads agrees with the outputs a ``read_committed``
consumer will ever see.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError
from aiokafka.structs import ConsumerRecord, TopicPartition

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.intake.watermark import Snapshot, decode_snapshot
from dxai.observability.logging import get_logger

log = get_logger(__name__)
HINT_PREFIX = "dxai-state:"
TOPIC_ALREADY_EXISTS = 36


def state_key(config: KafkaConfig, topic: str, partition: int) -> bytes:
    """The state record's key for one input partition of this consumer group."""
    return f"{config.group_id}/{topic}/{partition}".encode()


def state_partition(partition: int, state_partitions: int) -> int:
    """The state topic partition that keeps an input partition's records."""
    return partition % max(1, state_partitions)


def commit_metadata(state_offset: int) -> str:
    """The committed offset's metadata: where its state record is."""
    return f"{HINT_PREFIX}{state_offset}"


def _hint(metadata: str | None) -> int | None:
    if not metadata or not metadata.startswith(HINT_PREFIX):
        return None
    try:
        return int(metadata[len(HINT_PREFIX) :])
    except ValueError:
        return None


async def ensure_state_topic(config: KafkaConfig, partitions: int) -> None:
    """Create the (compacted) state topic with ``partitions`` partitions unless it exists;
    a broker that refuses (no rights) leaves it to the operator or to auto-creation."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers, request_timeout_ms=config.request_timeout_ms
    )
    topic = NewTopic(
        config.state_topic,
        max(1, partitions),
        config.state_topic_replication_factor,
        topic_configs={"cleanup.policy": "compact"},
    )
    try:
        await admin.start()
        response = await admin.create_topics([topic])
        errors = [e for e in _error_codes(response) if e not in (0, TOPIC_ALREADY_EXISTS)]
        if errors:
            log.warning("state topic not created", extra={"error_code": str(errors[0])})
    except KafkaError as exc:
        log.warning("state topic not created", extra={"error_code": type(exc).__name__})
    finally:
        await admin.close()


def _error_codes(response: Any) -> list[int]:
    """The error codes of a CreateTopics response (its field name depends on the version)."""
    obj = response.to_object()
    key = "topic_errors" if "topic_errors" in obj else "topic_error_codes"
    return [int(e["error_code"]) for e in obj.get(key, [])]


async def _committed(
    config: KafkaConfig, tps: list[TopicPartition]
) -> dict[TopicPartition, tuple[int, int | None]]:
    """Committed offset (-1: none) and state-record hint per input partition."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=config.bootstrap_servers, request_timeout_ms=config.request_timeout_ms
    )
    try:
        await admin.start()
        found = await admin.list_consumer_group_offsets(config.group_id, partitions=tps)
    except KafkaError as exc:
        raise ServiceUnavailableError(f"kafka offsets: {type(exc).__name__}") from exc
    finally:
        await admin.close()
    return {
        tp: (found[tp].offset, _hint(found[tp].metadata)) if tp in found else (-1, None)
        for tp in tps
    }


def _consumer(config: KafkaConfig, isolation: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=config.bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        request_timeout_ms=config.request_timeout_ms,
    )


async def _high_watermarks(config: KafkaConfig, parts: list[TopicPartition]) -> dict[Any, int]:
    """The end of each state partition including open transactions (read_uncommitted)."""
    consumer = _consumer(config, "read_uncommitted")
    await consumer.start()
    try:
        ends: dict[Any, int] = await consumer.end_offsets(parts)
        return ends
    finally:
        await consumer.stop()


async def _read_states(
    config: KafkaConfig, starts: dict[TopicPartition, int | None], deadline: float
) -> dict[bytes, bytes]:
    """The last committed state record per key, reading each partition from its start up to
    its high watermark of now (waits for open transactions to settle)."""
    parts = sorted(starts, key=lambda tp: tp.partition)
    ends = await _high_watermarks(config, parts)
    consumer = _consumer(config, "read_committed")
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    try:
        consumer.assign(parts)
        for tp in parts:
            start = starts[tp]
            if start is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, start)
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise ServiceUnavailableError("kafka: the state topic did not settle in time")
            batch = await consumer.getmany(*parts, timeout_ms=500)
            _keep_latest(latest, (m for msgs in batch.values() for m in msgs))
    finally:
        await consumer.stop()
    return latest


def _keep_latest(latest: dict[bytes, bytes], records: Iterable[ConsumerRecord[Any, Any]]) -> None:
    for record in records:
        if record.key is not None and record.value is not None:
            latest[bytes(record.key)] = bytes(record.value)


def _starts(
    config: KafkaConfig,
    committed: dict[TopicPartition, tuple[int, int | None]],
    state_partitions: int,
) -> dict[TopicPartition, int | None]:
    """Where to start reading each state partition: the oldest hint of the input partitions
    it keeps (None: from its beginning, some input partition has no hint)."""
    starts: dict[TopicPartition, int | None] = {}
    for tp, (_offset, hint) in committed.items():
        sp = TopicPartition(config.state_topic, state_partition(tp.partition, state_partitions))
        if sp not in starts:
            starts[sp] = hint
            continue
        earlier = starts[sp]
        starts[sp] = None if earlier is None or hint is None else min(earlier, hint)
    return starts


async def load_snapshots(
    config: KafkaConfig, tps: list[TopicPartition], state_partitions: int, timeout_s: float
) -> dict[TopicPartition, Snapshot]:
    """What the previous owners of ``tps`` left: each partition's committed watermark and the
    offsets above it that already concluded (see the module docstring)."""
    if not tps:
        return {}
    try:
        committed = await _committed(config, tps)
        starts = _starts(config, committed, state_partitions)
        latest = await _read_states(config, starts, time.monotonic() + timeout_s)
    except KafkaError as exc:
        raise ServiceUnavailableError(f"kafka state: {type(exc).__name__}") from exc
    return {tp: _snapshot(config, tp, committed[tp][0], latest) for tp in tps}


def _snapshot(
    config: KafkaConfig, tp: TopicPartition, committed: int, latest: dict[bytes, bytes]
) -> Snapshot:
    raw = latest.get(state_key(config, tp.topic, tp.partition))
    found = decode_snapshot(raw) if raw is not None else None
    floor = max(0, committed)
    if found is None:
        return Snapshot(floor)
    mark = max(floor, found.watermark)
    return Snapshot(mark, frozenset(o for o in found.concluded if o >= mark))
