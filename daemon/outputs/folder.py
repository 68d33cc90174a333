"""The folder publisher of embedded mode: one JSON file per output, written atomically."""

from __future__ import annotations

import hashlib
from pathlib import Path

import anyio.to_thread

from dxai.configs.atomic import write_bytes_atomic
from dxai.daemon.events import DecisionEvent, ResultsEvent, encode_event
from dxai.observability.tracing import TraceContext


class FolderPublisher:
    """Embedded mode: one JSON file per output under ``root`` (written atomically)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        for sub in ("decisions", "results", "dlq"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)

    async def _write(self, sub: str, name: str, data: bytes) -> None:
        await anyio.to_thread.run_sync(write_bytes_atomic, self.root / sub / name, data)

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        """Write ``decisions/<job key>.json``."""
        await self._write("decisions", f"{event.job_key}.json", encode_event(event))

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        """Write ``results/<job key>.json``."""
        await self._write("results", f"{event.job_key}.json", encode_event(event))

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        """Write the original bytes and a ``.reason`` file under ``dlq/``."""
        name = hashlib.sha256(origin.encode() + b"\0" + original).hexdigest()[:24]
        await self._write("dlq", f"{name}.bin", original)
        await self._write("dlq", f"{name}.reason", f"{code}: {reason}\n".encode())
