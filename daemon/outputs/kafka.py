"""The Kafka output publisher: decisions, results and dead letters (idempotent producer).

With ``kafka.commit_policy: watermark`` the Kafka intake registers :class:`ConclusionHooks`:
before a job's final outputs are produced the publisher asks whether its input partition is
still this daemon's (``check_owned`` raises when it moved away mid-job: the new owner runs the
job), and once they are produced it tells the intake (``concluded``), which advances the
partition's watermark.
"""

from __future__ import annotations

from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.services import KafkaConfig
from dxai.daemon.events import (
    DecisionEvent,
    ResultsEvent,
    dlq_headers,
    encode_event,
    trace_headers,
)
from dxai.observability.tracing import TraceContext, current_span_context


class ConclusionHooks(Protocol):
    """What the Kafka intake wants to know about a job's final outputs (see the module doc)."""

    def check_owned(self, job_key: str) -> None:
        """Raise (a ``PermanentError``) when the job's outputs must not be published here."""
        ...

    async def concluded(self, job_key: str) -> None:
        """The job's final decision and results were produced (called inside the transaction
        that produced them, when there is one)."""
        ...


class KafkaPublisher(AsyncLifecycle):
    """Idempotent producer (acks=all) for decisions, results and dead letters."""

    #: set by the Kafka intake under the watermark commit policy
    hooks: ConclusionHooks | None = None

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
            transaction_timeout_ms=config.transaction_timeout_ms,
        )

    async def start(self) -> None:
        """Connect the producer; idempotent."""
        if self._started:
            return
        try:
            await self._producer.start()
        except KafkaError as exc:
            await self._producer.stop()  # a failed start leaves connections to close
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
        """Produce to the decisions topic, keyed by job key (a ``deferred`` decision is an
        output of its own kind: its record must never stand for the final decision's)."""
        deferred = event.decision == "deferred"
        if not deferred and self.hooks is not None:
            self.hooks.check_owned(event.job_key)
        kind = "deferred" if deferred else "decision"
        await self._output(kind, self.config.decisions_topic, event, ctx)

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Produce to the results topic, keyed by job key (the job's last output: its
        conclusion is then reported to the hooks)."""
        if self.hooks is not None:
            self.hooks.check_owned(event.job_key)
        await self._output("results", self.config.results_topic, event, ctx)
        if self.hooks is not None:
            await self.hooks.concluded(event.job_key)

    async def send_state(self, topic: str, partition: int, key: bytes, value: bytes) -> int:
        """Produce one record to ``partition`` of ``topic``; its offset."""
        try:
            meta = await self._producer.send_and_wait(topic, value, key=key, partition=partition)
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka produce: {type(exc).__name__}") from exc
        return int(meta.offset)

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has (asks the broker; auto-creates where allowed)."""
        try:
            return len(await self._producer.partitions_for(topic))
        except KafkaError as exc:
            raise ServiceUnavailableError(f"kafka metadata: {type(exc).__name__}") from exc

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        """Produce the original bytes to the DLQ with the reason in headers (and the current
        span's trace context: the dead letter continues the input's trace)."""
        headers = dlq_headers(reason, code, origin, current_span_context())
        await self._send(self.config.dlq_topic, original, None, headers)
