"""/healthz and /readyz of the Kafka daemon against the real broker and Orthancs; SIGTERM drain.

Ready with everything up; not ready, saying why, with the broker or the destination down (a
local port nothing listens on); on SIGTERM the daemon reports ``draining``, cancels what outlives
``pipeline.drain_grace_s`` and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from kafka_helpers import kafka_section

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import run_daemon
from dxai.observability.metrics import Sensor

DEADLINE_S = 120.0
GRACE_S = 3.0
ALL_UP = {"lifecycle", "kafka", "models", "staging", "source:default", "destination:default"}


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(
    tmp: Path, bootstrap: str, topic: str, source: str, dest: str, **extra: Any
) -> dict[str, Any]:
    return {
        "mode": "production",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": "never"},
        "kafka": kafka_section(
            bootstrap, topic, retry_backoff_initial_s=0.1, retry_backoff_max_s=1
        ),
        "source_dicomweb": {"base_url": source, "timeout_s": 60},
        "destination_dicomweb": {"base_url": dest},
        "metrics": {"enabled": True, "host": "127.0.0.1", "port": 0},
        "health": {"probe_interval_s": 0.5, "probe_timeout_s": 2},
        **extra,
    }


@asynccontextmanager
async def _daemon(config: dict[str, Any]) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon in this loop; yields an HTTP client on its metrics port (answering before
    the daemon is ready: with the broker down it never is)."""
    port = _closed_port()
    config["metrics"]["port"] = port
    stop = asyncio.Event()
    task = asyncio.create_task(run_daemon(DxaiConfig.model_validate(config), stop, Sensor()))
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            yield client
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)


async def _readyz_until(client: httpx.AsyncClient, want: Any) -> dict[str, Any]:
    """Poll /readyz until ``want(status_code, body)``; the last body on success."""
    end = time.monotonic() + DEADLINE_S
    last: tuple[int, dict[str, Any]] | None = None
    while True:
        try:
            response = await client.get("/readyz")
            last = (response.status_code, response.json())
        except httpx.TransportError:  # the metrics port is not bound yet
            last = None
        if last is not None and want(*last):
            return last[1]
        if time.monotonic() > end:
            pytest.fail(f"/readyz never got there: {last}")
        await asyncio.sleep(0.2)


async def test_ready_with_everything_up(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, clean_orthanc: Any
) -> None:
    pair = clean_orthanc
    config = _config(
        tmp_path, kafka_bootstrap, kafka_topic, pair.source.dicomweb_url, pair.dest.dicomweb_url
    )
    async with _daemon(config) as client:
        body = await _readyz_until(client, lambda code, _b: code == 200)
        live = await client.get("/healthz")
        assert live.status_code == 200 and live.json()["status"] == "ok"
    assert body["status"] == "ready" and set(body["checks"]) == ALL_UP
    assert all(check["ok"] for check in body["checks"].values())
    assert "partition(s) assigned" in body["checks"]["kafka"]["detail"]


async def test_not_ready_with_the_broker_down(
    tmp_path: Path, kafka_topic: str, clean_orthanc: Any
) -> None:
    pair = clean_orthanc
    down = f"127.0.0.1:{_closed_port()}"
    config = _config(tmp_path, down, kafka_topic, pair.source.dicomweb_url, pair.dest.dicomweb_url)

    def broker_reported(code: int, body: dict[str, Any]) -> bool:
        checks = body.get("checks", {})
        probed = all(checks.get(r, {}).get("ok") for r in ("source:default", "destination:default"))
        return code == 503 and "Error" in body["not_ready"].get("kafka", "") and probed

    async with _daemon(config) as client:
        body = await _readyz_until(client, broker_reported)
        assert (await client.get("/healthz")).status_code == 200  # alive: it waits, not ready
    assert body["not_ready"] == {
        "kafka": "broker not connected (KafkaConnectionError)",
        "lifecycle": "starting: intake not started yet",  # it waits for the broker to start
    }
    assert _no_address_in(body, down, pair.dest.dicomweb_url)


async def test_not_ready_with_the_destination_down(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, clean_orthanc: Any
) -> None:
    dest = f"http://127.0.0.1:{_closed_port()}/dicom-web"
    config = _config(
        tmp_path, kafka_bootstrap, kafka_topic, clean_orthanc.source.dicomweb_url, dest
    )

    def destination_reported(code: int, body: dict[str, Any]) -> bool:
        return code == 503 and set(body.get("not_ready", {})) == {"destination:default"}

    async with _daemon(config) as client:
        body = await _readyz_until(client, destination_reported)
    assert body["not_ready"] == {"destination:default": "unreachable (ConnectError)"}
    assert body["checks"]["kafka"]["ok"] and body["checks"]["source:default"]["ok"]
    assert _no_address_in(body, dest)


def _no_address_in(body: dict[str, Any], *addresses: str) -> bool:
    text = json.dumps(body)
    return not any(a in text or a.split("//")[-1].split("/")[0] in text for a in addresses)


# -- SIGTERM -------------------------------------------------------------------------------


@asynccontextmanager
async def _silent_archive() -> AsyncIterator[str]:
    """A DICOMweb base URL whose server accepts requests and never answers them."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    async with server:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/dicom-web"
        for writer in held:
            writer.close()


def _job_states(db: Path) -> list[str]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return [row[0] for row in con.execute("SELECT state FROM jobs")]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


async def _wait_for(what: str, probe: Any) -> Any:
    end = time.monotonic() + DEADLINE_S
    while not (value := await probe()):
        if time.monotonic() > end:
            pytest.fail(f"{what} before the deadline")
        await asyncio.sleep(0.1)
    return value


async def _readyz_body(port: int) -> dict[str, Any] | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return dict((await client.get(f"http://127.0.0.1:{port}/readyz")).json())
    except httpx.HTTPError:
        return None


async def test_sigterm_drains_for_the_grace_period_then_exits_0(
    tmp_path: Path, kafka_bootstrap: str, kafka_topic: str, clean_orthanc: Any
) -> None:
    port = _closed_port()
    async with _silent_archive() as source:
        config = _config(
            tmp_path,
            kafka_bootstrap,
            kafka_topic,
            source,
            clean_orthanc.dest.dicomweb_url,
            pipeline={"drain_grace_s": GRACE_S},
        )
        config["metrics"]["port"] = port
        path = tmp_path / "daemon.yaml"
        path.write_text(yaml.safe_dump(config), encoding="utf-8")
        log = tmp_path / "daemon.log"
        with log.open("wb") as out:
            proc = _start(path, out)
        try:
            await _send_event(kafka_bootstrap, kafka_topic)
            db = tmp_path / "state" / "dxai.sqlite3"
            await _wait_for("the job never started fetching", _fetching(db))
            proc.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            draining = await _wait_for("/readyz never said draining", _draining(port))
            code = await asyncio.to_thread(proc.wait, DEADLINE_S)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)
    text = log.read_text(encoding="utf-8", errors="replace")
    assert code == 0, text[-3000:]
    assert draining["status"] == "not_ready"
    assert GRACE_S <= took < GRACE_S + 60, took
    assert "jobs cancelled at the drain deadline" in text
    assert _job_states(tmp_path / "state" / "dxai.sqlite3") == ["fetching"]  # resumable


def _start(config: Path, out: Any) -> subprocess.Popen[bytes]:
    """``dxai run --config CONFIG`` in a child process, its output to ``out``."""
    code = "from dxai.daemon.cli import entry; entry()"
    argv = [sys.executable, "-c", code, "run", "--config", str(config)]
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


async def _send_event(bootstrap: str, topic: str) -> None:
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": "1.2.826.0.1.3680043.8.498.7",
        "destination": "dest",
        "exchange_job_id": "drain-1",
        "source": {"kind": "dicomweb"},
    }
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, json.dumps(event).encode(), key=b"k")
    finally:
        await producer.stop()


def _fetching(db: Path) -> Any:
    async def probe() -> bool:
        return await asyncio.to_thread(_job_states, db) == ["fetching"]

    return probe


def _draining(port: int) -> Any:
    async def probe() -> dict[str, Any] | None:
        body = await _readyz_body(port)
        lifecycle = (body or {}).get("not_ready", {}).get("lifecycle", "")
        return body if lifecycle.startswith("draining") else None

    return probe
