"""Watermark commits and partition hand-over for the Kafka intake (``commit_policy: watermark``).

:class:`PartitionOwnership` is the consumer's rebalance listener and the publisher's
:class:`~dxai.daemon.outputs.kafka.ConclusionHooks`:

- **assigned**: before any event of a new partition is admitted, the partition's snapshot is
  rebuilt from the state topic (:func:`~dxai.daemon.intake.partition_state.load_snapshots`):
  events a previous owner already concluded are skipped as duplicates (no new output);
- **admitted**: each event's offset is held by its job until the job's final decision and
  results are produced (``concluded``), or freed at once (dead letter, duplicate);
- **commit**: the partition's watermark (lowest offset still held) and the offsets above it
  already done are written to the state topic and committed as the group's offset; with
  ``kafka.transactional`` inside the very transaction that produced the job's outputs (or the
  batch's dead letters), so outputs and input progress commit together;
- **revoked / stopping**: running jobs of the partition get ``kafka.revoke_grace_s`` to
  conclude here; those still running are abandoned (their outputs are refused here, the new
  owner runs them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.intake.partition_state import (
    commit_metadata,
    ensure_state_topic,
    load_snapshots,
    state_key,
    state_partition,
)
from dxai.daemon.intake.watermark import (
    PartitionRevokedError,
    Snapshot,
    WatermarkTracker,
    encode_snapshot,
)
from dxai.daemon.outputs.kafka import KafkaPublisher
from dxai.daemon.outputs.kafka_txn import TransactionalPublisher
from dxai.observability.logging import get_logger

log = get_logger(__name__)
Part = tuple[str, int]
Offsets = dict[TopicPartition, tuple[int, str]]


class PartitionOwnership(ConsumerRebalanceListener):  # type: ignore[misc]
    """Per-partition watermarks, their commits and hand-over (see the module docstring)."""

    def __init__(
        self,
        config: KafkaConfig,
        publisher: KafkaPublisher,
        consumer: Callable[[], AIOKafkaConsumer],
        stop: asyncio.Event,
    ) -> None:
        self.config = config
        self.publisher = publisher
        self.txn = publisher if isinstance(publisher, TransactionalPublisher) else None
        self.tracker = WatermarkTracker()
        self.committed: dict[TopicPartition, int] = {}
        self._consumer = consumer
        self._stop = stop
        self._state_parts: int | None = None
        self._closing: set[Part] = set()
        self._progress = asyncio.Event()
        self._rebuilt = asyncio.Event()
        publisher.hooks = self

    # -- publisher hooks -----------------------------------------------------------------

    def check_owned(self, job_key: str) -> None:
        """Refuse the final outputs of a job whose partition moved away while it ran."""
        if self.tracker.is_abandoned(job_key):
            raise PartitionRevokedError(f"job {job_key[:16]}: its input partition moved")

    async def concluded(self, job_key: str) -> None:
        """Free the job's offsets.  Transactional: the new watermarks are committed inside the
        outputs' transaction and take effect here only once it commits."""
        if self.txn is None:
            self.tracker.concluded(job_key)
            self._progress.set()
            return
        parts = set(self.tracker.parts_of(job_key)) | set(self.tracker.dirty())
        await self.commit(parts, job_key)

    # -- rebalance listener --------------------------------------------------------------

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        """Rebuild each new partition's snapshot (retried until done or the daemon stops)."""
        new = [tp for tp in assigned if not self.tracker.owns(tp.topic, tp.partition)]
        delay = self.config.retry_backoff_initial_s
        while new and not self._stop.is_set():
            try:
                snapshots = await self._load(new)
            except ServiceUnavailableError as exc:
                log.warning("partition state not rebuilt yet", extra={"error_code": exc.code})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=delay)
                delay = min(delay * 2, self.config.retry_backoff_max_s)
                continue
            for tp, snapshot in snapshots.items():
                self.tracker.assign(tp.topic, tp.partition, snapshot)
                self._closing.discard((tp.topic, tp.partition))
            log.info("partitions taken over", extra={"count": len(new)})
            break
        self._rebuilt.set()

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        """Hand the partitions over (running jobs get ``revoke_grace_s``)."""
        await self.release([(tp.topic, tp.partition) for tp in revoked])

    async def _load(self, tps: list[TopicPartition]) -> dict[TopicPartition, Snapshot]:
        if self._state_parts is None:
            inputs = await self.publisher.partition_count(self.config.input_topic)
            await ensure_state_topic(self.config, inputs)
            self._state_parts = await self.publisher.partition_count(self.config.state_topic)
        timeout = self.config.state_rebuild_timeout_s
        return await load_snapshots(self.config, tps, self._state_parts, timeout)

    # -- intake side ---------------------------------------------------------------------

    async def wait_owned(self, tp: TopicPartition) -> bool:
        """Wait until ``tp`` is rebuilt; False when it is no longer this daemon's to admit."""
        part = (tp.topic, tp.partition)
        while not self.tracker.owns(*part):
            if tp not in self._consumer().assignment() or self._stop.is_set():
                return False
            self._rebuilt.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rebuilt.wait(), timeout=0.5)
        return part not in self._closing

    def lagging(self, tp: TopicPartition) -> bool:
        """Whether the partition's uncommitted window reached ``max_uncommitted_offsets``."""
        if not self.tracker.owns(tp.topic, tp.partition):
            return False
        window = self.tracker.marks(tp.topic, tp.partition).window
        return window >= self.config.max_uncommitted_offsets

    async def commit(self, parts: Iterable[Part], job_key: str | None = None) -> None:
        """Write the snapshots of ``parts`` (as they are once ``job_key`` concluded) and commit
        their watermarks, inside the current transaction when transactional; the tracker
        takes them only when that commits (nothing changes on a failure)."""
        todo = sorted(p for p in set(parts) if self.tracker.owns(*p))
        snapshots = self.tracker.preview(todo, job_key)
        try:
            offsets = await self._write_states(snapshots)
            if self.txn is not None:
                if offsets:
                    await self.txn.send_offsets(offsets)
                self.txn.on_commit(lambda: self._applied(snapshots, job_key))
                return
            if offsets:
                await self._consumer().commit(offsets)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka commit: {type(exc).__name__}") from exc
        self._applied(snapshots, job_key)

    def _applied(self, snapshots: dict[Part, Snapshot], job_key: str | None) -> None:
        if job_key is not None:
            self.tracker.concluded(job_key)
        for part, snapshot in snapshots.items():
            self.tracker.settle(part, snapshot)
            self.committed[TopicPartition(*part)] = snapshot.watermark
        self._progress.set()

    async def _write_states(self, snapshots: dict[Part, Snapshot]) -> Offsets:
        offsets: Offsets = {}
        count = self._state_parts or 1
        for (topic, partition), snapshot in snapshots.items():
            where = await self.publisher.send_state(
                self.config.state_topic,
                state_partition(partition, count),
                state_key(self.config, topic, partition),
                encode_snapshot(snapshot),
            )
            offsets[TopicPartition(topic, partition)] = (snapshot.watermark, commit_metadata(where))
        return offsets

    async def flush_dirty(self) -> None:
        """Commit partitions whose snapshot changed outside a commit (a failed one, a
        non-transactional conclusion); errors are logged, retried at the next call."""
        dirty = self.tracker.dirty()
        if not dirty:
            return
        try:
            if self.txn is not None:
                async with self.txn.transaction():
                    await self.commit(dirty)
            else:
                await self.commit(dirty)
        except ServiceUnavailableError as exc:
            log.warning("watermark commit failed", extra={"error_code": exc.code})

    async def release(self, parts: list[Part]) -> None:
        """Give partitions up: wait ``revoke_grace_s`` for their running jobs, commit, forget
        them; jobs still running are abandoned to the next owner."""
        mine = [p for p in parts if self.tracker.owns(*p)]
        if not mine:
            return
        self._closing.update(mine)
        deadline = time.monotonic() + self.config.revoke_grace_s
        while True:
            self._progress.clear()
            left = deadline - time.monotonic()
            if not self.tracker.pending_in(mine) or left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), timeout=min(left, 1.0))
        await self.flush_dirty()
        abandoned = [k for p in mine for k in self.tracker.revoke(*p)]
        for p in mine:
            self.committed.pop(TopicPartition(*p), None)
        self._closing -= set(mine)
        if abandoned:
            log.warning("running jobs left to the next owner", extra={"count": len(abandoned)})
        log.info("partitions handed over", extra={"count": len(mine)})

    async def release_all(self) -> None:
        """Hand every owned partition over (the daemon stops)."""
        owned = [(tp.topic, tp.partition) for tp in self._consumer().assignment()]
        await self.release(owned)
