"""The review app on uvicorn, inside the daemon's event loop.

The socket is bound before uvicorn starts (port 0: an ephemeral port, read back), uvicorn's own
signal handling is off (the daemon owns SIGTERM/SIGINT and stops this server on its way out),
and so are its access log (request lines would carry job keys and UIDs into a second log
format) and its logging configuration (the daemon's PHI-safe formatter stays in place).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator

import uvicorn
from starlette.types import ASGIApp

from dxai.configs.errors import ConfigError, ServiceUnavailableError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.observability.logging import get_logger

log = get_logger(__name__)
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (the daemon's stay in force)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` (not yet listening)."""
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError(f"review.bind_host {host!r}: cannot resolve") from exc
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServiceUnavailableError(f"review API: cannot bind port {port}") from exc
    return sock


class ReviewServer(AsyncLifecycle):
    """Serves ``app`` on ``host``:``port`` until stopped; ``port`` is the bound one."""

    def __init__(self, app: ASGIApp, host: str, port: int) -> None:
        self.app, self.host, self.port = app, host, port
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Bind, start uvicorn, return once it accepts connections (idempotent)."""
        if self._task is not None:
            return
        sock = bind(self.host, self.port)
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
            timeout_graceful_shutdown=STOP_TIMEOUT_S,
        )
        server = self._server = _Server(config)
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="review-http")
        deadline = asyncio.get_running_loop().time() + START_TIMEOUT_S
        while not server.started:
            if self._task.done() or asyncio.get_running_loop().time() > deadline:
                await self.stop()
                raise ServiceUnavailableError("review API did not start")
            await asyncio.sleep(0.01)
        log.info("review api listening", extra={"port": self.port})

    async def stop(self) -> None:
        """Stop accepting, finish requests in flight (bounded), stop (idempotent)."""
        task, self._task = self._task, None
        if task is None or self._server is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(task, STOP_TIMEOUT_S + 5.0)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        except (OSError, SystemExit):  # uvicorn exits on a startup failure
            log.warning("review api stopped with an error", extra={"component": "review"})
