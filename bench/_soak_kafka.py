"""The soak benchmark's Kafka side: its own topics, a reader of the daemons' outputs, and the
consumer group's lag (committed offsets against end offsets, read with an admin client)."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError


@dataclass(frozen=True)
class Topics:
    """The input topic and the three output topics of one soak run."""

    input: str

    @property
    def decisions(self) -> str:
        """Decision events."""
        return f"{self.input}.decisions"

    @property
    def results(self) -> str:
        """Results events."""
        return f"{self.input}.results"

    @property
    def dlq(self) -> str:
        """Dead letters."""
        return f"{self.input}.dlq"

    def all(self) -> list[str]:
        """Every topic of the run."""
        return [self.input, self.decisions, self.results, self.dlq]

    @property
    def group(self) -> str:
        """The daemons' consumer group."""
        return f"g-{self.input}"


async def create_topics(bootstrap: str, topics: Topics, partitions: int) -> None:
    """Create the run's topics with ``partitions`` partitions each (replication 1)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        new = [NewTopic(name, partitions, 1) for name in topics.all()]
        await admin.create_topics(new)
        deadline = time.monotonic() + 30
        while set(topics.all()) - set(await admin.list_topics()):
            if time.monotonic() > deadline:
                raise RuntimeError("the broker did not list the new topics in time")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, topics: Topics) -> bool:
    """Delete the run's topics; False when the broker refused."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(topics.all())
        return True
    except KafkaError:
        return False
    finally:
        await admin.close()


@dataclass
class JobOutputs:
    """What the daemons produced for one job (record times in epoch seconds)."""

    decisions: list[tuple[str, float]] = field(default_factory=list)  # (decision, record time)
    results: list[dict[str, Any]] = field(default_factory=list)
    results_at: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def final_decisions(self) -> list[tuple[str, float]]:
        """Decisions other than ``deferred``."""
        return [d for d in self.decisions if d[0] != "deferred"]


@dataclass
class OutputReader:
    """Reads the decisions, results and dead letters of the run as they come (read_committed)."""

    bootstrap: str
    topics: Topics
    partitions: int
    jobs: dict[str, JobOutputs] = field(default_factory=lambda: defaultdict(JobOutputs))
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    unparsed: int = 0

    async def run(self, stop: asyncio.Event) -> None:
        """Consume from the beginning until ``stop`` (then one last poll)."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, isolation_level="read_committed"
        )
        await consumer.start()
        try:
            topics = (self.topics.decisions, self.topics.results, self.topics.dlq)
            parts = [TopicPartition(t, p) for t in topics for p in range(self.partitions)]
            consumer.assign(parts)
            await consumer.seek_to_beginning(*parts)
            while not stop.is_set():
                await self._poll(consumer)
            await self._poll(consumer)
        finally:
            await consumer.stop()

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        batch = await consumer.getmany(timeout_ms=500)
        for tp, records in batch.items():
            for record in records:
                self._take(tp.topic, record.value or b"", record.timestamp / 1000, record.headers)

    def _take(self, topic: str, value: bytes, at: float, headers: Any) -> None:
        if topic == self.topics.dlq:
            self.dead_letters.append(_dead_letter(value, headers))
            return
        try:
            body = json.loads(value)
            job = self.jobs[str(body["exchange_job_id"])]
        except (ValueError, KeyError, TypeError):
            self.unparsed += 1
            return
        if topic == self.topics.decisions:
            job.decisions.append((str(body["decision"]), at))
            job.reasons += [str(r.get("code")) for r in body.get("reasons") or []]
        else:
            job.results.append(body)
            job.results_at.append(at)

    def finished(self) -> set[str]:
        """Jobs with a results event and a final decision."""
        return {j for j, out in self.jobs.items() if out.results and out.final_decisions()}


def _dead_letter(value: bytes, headers: Any) -> dict[str, Any]:
    """A dead letter's job id (when its value is an event) and PHI-free error code."""
    named = {k: (v or b"").decode("utf-8", "replace") for k, v in headers or ()}
    try:
        job = str(json.loads(value).get("exchange_job_id"))
    except (ValueError, AttributeError):
        job = None
    return {"job": job, "error_code": named.get("dxai-dlq-error-code", "unknown")}


@dataclass
class LagProbe:
    """The group's lag on the input topic: end offsets minus committed offsets, summed."""

    bootstrap: str
    topics: Topics
    partitions: int
    admin: AIOKafkaAdminClient | None = None
    consumer: AIOKafkaConsumer | None = None

    async def start(self) -> None:
        """Connect the admin client and an offsets-only consumer."""
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=None, isolation_level="read_committed"
        )
        await self.consumer.start()

    async def close(self) -> None:
        """Disconnect."""
        if self.consumer is not None:
            await self.consumer.stop()
        if self.admin is not None:
            await self.admin.close()

    async def sample(self) -> dict[int, int] | None:
        """Lag per partition now (None when the broker did not answer)."""
        assert self.admin is not None and self.consumer is not None
        parts = [TopicPartition(self.topics.input, p) for p in range(self.partitions)]
        try:
            committed = await self.admin.list_consumer_group_offsets(self.topics.group)
            ends = await self.consumer.end_offsets(parts)
        except KafkaError:
            return None
        out = {}
        for tp in parts:
            done = committed[tp].offset if tp in committed else 0
            out[tp.partition] = max(0, ends[tp] - max(done, 0))
        return out
