"""Prometheus `/metrics` endpoint (prometheus-client thread) and the event-loop lag probe."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from prometheus_client import start_http_server

from dxai.configs.schema.services import MetricsConfig
from dxai.observability.metrics import Sensor


def start_metrics_server(config: MetricsConfig, sensor: Sensor) -> Any | None:
    """Serve the sensor's registry on ``host:port`` from a daemon thread; None when disabled."""
    if not config.enabled:
        return None
    server, _thread = start_http_server(config.port, addr=config.host, registry=sensor.registry)
    return server


async def monitor_loop_lag(sensor: Sensor, interval_s: float = 0.25) -> None:
    """Record how late the event loop wakes a sleeping task, forever (cancel to stop)."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(interval_s)
        lag = time.monotonic() - started - interval_s
        sensor.observe("loop_lag_s", max(0.0, lag))
