"""The embedded daemon in the test's own event loop (shared by the daemon integration tests)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


async def final_outcome(
    handle: DaemonHandle, job: str, deadline_s: float
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(decision, results) of ``job`` once both are written (a ``deferred`` decision is not
    final); fails the test after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        found = {}
        for kind in ("decisions", "results"):
            for path in (handle.results / kind).glob("*.json"):
                data = json.loads(path.read_text())
                if data["exchange_job_id"] == job and data.get("decision") != "deferred":
                    found[kind] = data
        if len(found) == 2:
            return found["decisions"], found["results"]
        if time.monotonic() > end:
            pytest.fail(f"job {job} did not conclude before the deadline")
        await asyncio.sleep(0.1)
