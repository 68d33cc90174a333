"""The embedded daemon in the test's own event loop (shared by the daemon integration tests)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.observability.metrics import Sensor

START_S = 120.0


@asynccontextmanager
async def embedded(config: DxaiConfig) -> AsyncIterator[DaemonHandle]:
    """The embedded daemon in this process, stopped (and checked) on exit."""
    stop = asyncio.Event()
    ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_daemon(config, stop, Sensor(), ready=ready.set_result))
    await asyncio.wait({ready, task}, timeout=START_S, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        task.cancel()
        pytest.fail("embedded daemon did not start")
    try:
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, START_S)
