"""Prometheus `/metrics` endpoint (prometheus-client thread) and the event-loop lag probe."""

from __future__ import annotations

import asyncio
import threading
import time
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server

from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.services import MetricsConfig
from dxai.observability.metrics import Sensor

_JOIN_TIMEOUT_S = 5.0


class MetricsServer(AsyncLifecycle):
    """Serves the sensor's registry on ``host:port`` between ``start()`` and ``stop()``.

    The HTTP server runs in a prometheus-client daemon thread; ``stop()`` shuts it down and
    closes its socket, so the port is free again.  Both are idempotent; disabled: no-ops.
    """

    def __init__(self, config: MetricsConfig, sensor: Sensor) -> None:
        self.config = config
        self.sensor = sensor
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int | None:
        """The bound port (useful with ``port: 0``); None while not serving."""
        return None if self._server is None else int(self._server.server_address[1])

    async def start(self) -> None:
        """Bind and serve; idempotent (no-op when metrics are disabled)."""
        if self._server is not None or not self.config.enabled:
            return
        self._server, self._thread = await asyncio.to_thread(
            start_http_server, self.config.port, self.config.host, self.sensor.registry
        )

    async def stop(self) -> None:
        """Stop serving and release the port; idempotent."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            await asyncio.to_thread(_shutdown, server, thread)


def _shutdown(server: WSGIServer, thread: threading.Thread | None) -> None:
    """Stop ``serve_forever``, close the listening socket, wait for the thread (blocking)."""
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(_JOIN_TIMEOUT_S)


async def monitor_loop_lag(sensor: Sensor, interval_s: float = 0.25) -> None:
    """Record how late the event loop wakes a sleeping task, forever (cancel to stop)."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(interval_s)
        lag = time.monotonic() - started - interval_s
        sensor.observe("loop_lag_s", max(0.0, lag))
