"""Sampled metrics: what the job store knows, set on the sensor every ``sample_interval_s``.

``dxai_jobs{state}`` (also set at every conclusion), ``dxai_review_held_instances`` and
``dxai_review_backlog_age_seconds`` (how long the longest-waiting held study has waited: the
number an operator's review-backlog alert watches).  Consumer lag is sampled by the Kafka
intake itself, loop lag by ``monitor_loop_lag``, process memory by the registry's process
collector.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from dxai.configs.errors import DxaiError
from dxai.daemon.jobs import JobStore
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

log = get_logger(__name__)


async def sample_store(store: JobStore, sensor: Sensor, now: float | None = None) -> None:
    """Set the job-state and review-backlog gauges from ``store`` once."""
    for state, count in (await store.count_by_state()).items():
        sensor.set_gauge("jobs", float(count), {"state": state})
    backlog = await store.review_backlog()
    sensor.set_gauge("review_held_instances", float(backlog.instances))
    now = time.time() if now is None else now
    age = 0.0 if backlog.oldest_s is None else max(0.0, now - backlog.oldest_s)
    sensor.set_gauge("review_backlog_age_s", age)


async def sample_forever(
    store: JobStore, sensor: Sensor, interval_s: float, stop: asyncio.Event
) -> None:
    """:func:`sample_store` every ``interval_s`` until ``stop`` (a failed sample is counted)."""
    while not stop.is_set():
        try:
            await sample_store(store, sensor)
        except Exception as exc:  # noqa: BLE001 - a failed sample must not end the sampling
            code = exc.code if isinstance(exc, DxaiError) else "internal_error"
            sensor.count("errors", {"component": "telemetry", "error_code": code})
            log.warning("metrics sample failed", extra={"error_code": code})
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
