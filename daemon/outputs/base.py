"""The Publisher interface: where a job's decision, results and dead letters go."""

from __future__ import annotations

from typing import Protocol

from dxai.daemon.events import DecisionEvent, ResultsEvent
from dxai.observability.tracing import TraceContext


class Publisher(Protocol):
    """Sends a job's outputs; returns only once they are durable at the receiving end."""

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        """Publish the decision event."""
        ...

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Publish the results event."""
        ...

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        """Publish the original bytes of an input that cannot be processed, with the reason."""
        ...
