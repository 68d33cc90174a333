"""The one call every intake uses to hand an input to the pipeline."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from dxai.daemon.pipeline import Admission

Submit = Callable[[bytes, str | None, str], Awaitable[Admission]]
"""``await submit(raw_event_json, traceparent, origin)``: durable on return (see Pipeline)."""
