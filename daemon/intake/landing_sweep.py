"""Landing-zone cleanup: delete a sealed batch once its job is durably finished.

A batch goes when its job reached ``released``, ``blocked`` or ``failed`` with both outputs sent,
``embedded.landing_retention_s`` ago (``held_for_review`` batches stay: a reviewer may need them).
"""

from __future__ import annotations

import asyncio
import time

import anyio.to_thread
from pydantic import ValidationError

from dxai.daemon.events import StudyEvent
from dxai.daemon.intake.landing import LandingZone
from dxai.daemon.jobs import JobStore, job_key
from dxai.observability.logging import get_logger

log = get_logger(__name__)
REMOVABLE_STATES = frozenset({"released", "blocked", "failed"})


async def sweep_landing(
    zone: LandingZone, store: JobStore, version: str, retention_s: float, now: float | None = None
) -> int:
    """Delete every batch whose job finished ``retention_s`` before ``now``; how many went."""
    now = time.time() if now is None else now
    removed = 0
    for job_id, raw in await anyio.to_thread.run_sync(zone.sealed):
        try:
            event = StudyEvent.model_validate_json(raw)
        except ValidationError:
            continue  # not ours to judge: the job store dead-letters it on re-submit
        job = await store.get(job_key(event.exchange_job_id, event.study_uid, version))
        if job is None or not job.finished or job.state not in REMOVABLE_STATES:
            continue
        if job.updated_at + retention_s > now:
            continue
        await anyio.to_thread.run_sync(zone.remove_batch, job_id)
        removed += 1
    if removed:
        log.info("landing batches removed", extra={"count": removed})
    return removed


async def sweep_forever(
    zone: LandingZone, store: JobStore, version: str, retention_s: float, interval_s: float
) -> None:
    """Sweep every ``interval_s`` until cancelled (errors are logged, never fatal)."""
    while True:
        try:
            await sweep_landing(zone, store, version, retention_s)
        except (OSError, ValueError) as exc:
            log.error("landing sweep failed", extra={"error_code": type(exc).__name__})
        await asyncio.sleep(interval_s)
