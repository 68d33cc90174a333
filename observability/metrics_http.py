"""The metrics port: Prometheus ``/metrics``, ``/healthz`` and ``/readyz``; the loop-lag probe.

One WSGI server in a daemon thread serves the sensor's registry on every path except the two
health paths, which ask a :class:`~dxai.observability.health.HealthState` (200 when healthy or
ready, else 503, with a JSON body that says why; see ``health``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import make_wsgi_app

from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.services import MetricsConfig
from dxai.observability.health import HealthState, JsonBody
from dxai.observability.metrics import Sensor

_JOIN_TIMEOUT_S = 5.0
HEALTH_PATHS = ("/healthz", "/readyz")
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request (a slow scrape never delays a probe); threads never block exit."""

    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (probes come every few seconds)."""

    def log_message(self, format: str, *args: Any) -> None:
        return


def make_app(sensor: Sensor, health: HealthState) -> WsgiApp:
    """The WSGI app: health paths from ``health``, everything else Prometheus exposition."""
    metrics = make_wsgi_app(sensor.registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = str(environ.get("PATH_INFO", ""))
        if path == "/healthz":
            return _json(start_response, *health.liveness())
        if path == "/readyz":
            return _json(start_response, *health.readiness())
        result: Iterable[bytes] = metrics(environ, start_response)
        return result

    return app


def _json(start_response: StartResponse, ok: bool, body: JsonBody) -> list[bytes]:
    data = json.dumps(body, sort_keys=True).encode("utf-8")
    status = "200 OK" if ok else "503 Service Unavailable"
    headers = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(data))),
        ("Cache-Control", "no-store"),
    ]
    start_response(status, headers)
    return [data]


def _serve(host: str, port: int, app: WsgiApp) -> tuple[WSGIServer, threading.Thread]:
    """Bind ``host:port`` (IPv4 or IPv6, as the host resolves) and serve in a daemon thread."""

    class Server(_ThreadingServer):
        pass

    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    Server.address_family = infos[0][0]
    server = make_server(host, port, app, Server, handler_class=_QuietHandler)
    thread = threading.Thread(target=server.serve_forever, name="dxai-metrics", daemon=True)
    thread.start()
    return server, thread


class MetricsServer(AsyncLifecycle):
    """Serves ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port`` while started.

    The HTTP server runs in a daemon thread; ``stop()`` shuts it down and closes its socket,
    so the port is free again.  Both are idempotent; disabled: no-ops.  ``start()`` attaches
    ``health`` to the running loop (a fresh state, never ready, when none is given).
    """

    def __init__(
        self, config: MetricsConfig, sensor: Sensor, health: HealthState | None = None
    ) -> None:
        self.config = config
        self.sensor = sensor
        self.health = health or HealthState()
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
        self.health.attach(asyncio.get_running_loop())
        app = make_app(self.sensor, self.health)
        self._server, self._thread = await asyncio.to_thread(
            _serve, self.config.host, self.config.port, app
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
