"""A small asyncio TCP listener base shared by the webhook and the MLLP listener."""

from __future__ import annotations

import asyncio
import contextlib

from dxai.observability.logging import get_logger

log = get_logger(__name__)


class TcpListener:
    """``await start(host, port)`` returns the bound port; ``stop()`` is idempotent."""

    component = "tcp"
    read_limit_bytes = 64 * 1024

    def __init__(self) -> None:
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0: any free port); return the bound port."""
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=self.read_limit_bytes
        )
        bound: int = self._server.sockets[0].getsockname()[1]
        log.info("listening", extra={"component": self.component, "port": bound})
        return bound

    async def stop(self) -> None:
        """Stop listening and wait for the server to close."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError


async def close_quietly(writer: asyncio.StreamWriter) -> None:
    """Close a connection; a peer that already went away is not an error."""
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()
