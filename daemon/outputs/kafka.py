"""The Kafka output publisher: decisions, results and dead letters (idempotent producer)."""

from __future__ import annotations

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
        """Produce to the decisions topic, keyed by job key."""
        await self._output("decision", self.config.decisions_topic, event, ctx)

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Produce to the results topic, keyed by job key."""
        await self._output("results", self.config.results_topic, event, ctx)

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        """Produce the original bytes to the DLQ with the reason in headers (and the current
        span's trace context: the dead letter continues the input's trace)."""
        headers = dlq_headers(reason, code, origin, current_span_context())
        await self._send(self.config.dlq_topic, original, None, headers)
