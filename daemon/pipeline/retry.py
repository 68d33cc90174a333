"""Retry with exponential backoff for :class:`RetriableError` (everything else propagates)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from dxai.configs.errors import RetriableError
from dxai.configs.schema.services import KafkaConfig

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """``max_retries`` extra attempts, waiting initial * 2**n seconds capped at ``max_s``."""

    max_retries: int = 3
    initial_s: float = 0.5
    max_s: float = 30.0

    @classmethod
    def from_config(cls, config: KafkaConfig | None) -> RetryPolicy:
        """The policy of the ``kafka`` settings; the defaults when Kafka is not configured."""
        if config is None:
            return cls()
        return cls(config.max_retries, config.retry_backoff_initial_s, config.retry_backoff_max_s)

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0-based)."""
        return float(min(self.max_s, self.initial_s * (2**attempt)))


async def with_retry(policy: RetryPolicy, call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call()``; on a retriable error wait and try again, up to the policy's limit."""
    attempt = 0
    while True:
        try:
            return await call()
        except RetriableError:
            if attempt >= policy.max_retries:
                raise
            await asyncio.sleep(policy.delay(attempt))
            attempt += 1
