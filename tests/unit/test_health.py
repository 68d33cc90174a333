"""Liveness and readiness: the HealthState, the HTTP endpoints and the daemon's checks."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest

from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DicomWebEndpoint, HealthConfig, KafkaConfig, MetricsConfig
from dxai.daemon.health import (
    RouteProbes,
    models_check,
    probe_folder,
    probe_http,
    probe_tcp,
    staging_check,
)
from dxai.daemon.pipeline.staging import Staging
from dxai.observability.health import CheckResult, HealthState
from dxai.observability.metrics import Sensor
from dxai.observability.metrics_http import MetricsServer

DEADLINE_S = 20.0


def _closed_port() -> int:
    """A local port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _http_server(status: int) -> tuple[asyncio.Server, int]:
    """A local HTTP server answering every request with ``status`` (an empty body)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(f"HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n".encode())
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, int(server.sockets[0].getsockname()[1])


# -- HealthState ---------------------------------------------------------------------------


async def test_liveness_answers_while_the_loop_runs() -> None:
    health = HealthState(loop_timeout_s=5.0)
    health.attach(asyncio.get_running_loop())
    ok, body = await asyncio.to_thread(health.liveness)
    assert ok and body["status"] == "ok"
    assert body["event_loop_answer_ms"] >= 0


def test_liveness_fails_when_the_loop_is_blocked() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    health = HealthState(loop_timeout_s=0.2)
    health.attach(loop)
    release, blocked = threading.Event(), threading.Event()

    def block() -> None:
        blocked.set()
        release.wait(DEADLINE_S)

    try:
        assert health.liveness()[0]
        loop.call_soon_threadsafe(block)
        assert blocked.wait(DEADLINE_S)
        ok, body = health.liveness()
        assert not ok
        assert body == {"status": "unhealthy", "reason": "event loop did not answer within 0.2 s"}
        assert not health.readiness()[0]
    finally:
        release.set()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(DEADLINE_S)
        loop.close()
    assert not health.liveness()[0]  # a closed loop never answers


def test_without_a_loop_nothing_is_live_or_ready() -> None:
    health = HealthState(loop_timeout_s=0.1)
    assert not health.liveness()[0]
    ok, body = health.readiness()
    assert not ok and "event_loop" in body["not_ready"]


async def test_readiness_names_every_failing_check_and_the_phase() -> None:
    health = HealthState(loop_timeout_s=5.0)
    health.attach(asyncio.get_running_loop())
    health.add("kafka", lambda: CheckResult(True, "broker connected; 3 partition(s) assigned"))
    health.add("destination:dest", lambda: CheckResult(False, "unreachable (ConnectError)"))

    def broken() -> CheckResult:
        raise ValueError("a message that must not be shown")

    health.add("models", broken)
    ok, body = await asyncio.to_thread(health.readiness)
    assert not ok and body["status"] == "not_ready"
    assert body["not_ready"] == {
        "lifecycle": "starting: intake not started yet",
        "destination:dest": "unreachable (ConnectError)",
        "models": "check failed (ValueError)",
    }
    assert body["checks"]["kafka"] == {
        "ok": True,
        "detail": "broker connected; 3 partition(s) assigned",
    }
    assert "must not be shown" not in json.dumps(body)
    health.add("destination:dest", lambda: CheckResult(True, "answers HTTP 200"))
    health.add("models", lambda: CheckResult(True, "loaded"))
    health.set_phase("serving")
    ok, body = await asyncio.to_thread(health.readiness)
    assert ok and body["status"] == "ready" and "not_ready" not in body
    health.set_phase("draining")
    ok, body = await asyncio.to_thread(health.readiness)
    assert not ok and body["not_ready"] == {
        "lifecycle": "draining: stopped taking work, finishing running jobs"
    }


# -- the endpoints on the metrics port ------------------------------------------------------


async def test_metrics_port_serves_healthz_readyz_and_metrics() -> None:
    sensor = Sensor()
    sensor.count("events_consumed", {"source": "kafka", "outcome": "accepted"})
    health = HealthState(loop_timeout_s=5.0)
    state = {"ok": False}
    health.add("kafka", lambda: CheckResult(state["ok"], "broker"))
    async with (
        MetricsServer(MetricsConfig(host="127.0.0.1", port=0), sensor, health) as server,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client,
    ):
        live = await client.get("/healthz")
        assert live.status_code == 200 and live.json()["status"] == "ok"
        assert live.headers["content-type"] == "application/json"
        not_ready = await client.get("/readyz")
        assert not_ready.status_code == 503
        assert set(not_ready.json()["not_ready"]) == {"lifecycle", "kafka"}
        health.set_phase("serving")
        state["ok"] = True
        ready = await client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ready"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200 and b"dxai_events_consumed_total" in metrics.content


# -- the daemon's checks -------------------------------------------------------------------


async def test_http_probe_counts_any_answer_below_500_as_reachable() -> None:
    for status, ok in ((200, True), (401, True), (404, True), (503, False)):
        server, port = await _http_server(status)
        async with server:
            endpoint = DicomWebEndpoint(base_url=f"http://127.0.0.1:{port}/dicom-web")
            result = await probe_http(endpoint, timeout_s=5.0)
        assert result == CheckResult(ok, f"answers HTTP {status}")
    down = DicomWebEndpoint(base_url=f"http://127.0.0.1:{_closed_port()}/dicom-web")
    assert await probe_http(down, timeout_s=5.0) == CheckResult(False, "unreachable (ConnectError)")


async def test_tcp_and_folder_probes(tmp_path: Path) -> None:
    server = await asyncio.start_server(lambda _r, w: w.close(), "127.0.0.1", 0)
    async with server:
        port = int(server.sockets[0].getsockname()[1])
        assert (await probe_tcp("127.0.0.1", port)).ok
    down = await probe_tcp("127.0.0.1", _closed_port())
    assert not down.ok and down.detail.startswith("unreachable (")
    assert probe_folder(tmp_path / "not" / "made" / "yet", os.W_OK).ok
    (tmp_path / "file").write_bytes(b"")
    assert probe_folder(tmp_path / "file", os.R_OK) == CheckResult(False, "folder missing")


async def test_route_probes_cover_every_configured_route(tmp_path: Path) -> None:
    server, port = await _http_server(200)
    config = DxaiConfig.model_validate(
        {
            "state": {"data_dir": str(tmp_path)},
            "sources": {"inbox": {"kind": "local", "root": str(tmp_path)}},
            "destinations": {
                "up": {"kind": "dicomweb", "base_url": f"http://127.0.0.1:{port}/dicom-web"},
                "down": {"kind": "dimse", "ae_title": "X", "host": "127.0.0.1", "port": 1},
            },
            "health": {"probe_timeout_s": 5},
        }
    )
    probes = RouteProbes(config)
    health = HealthState(loop_timeout_s=5.0)
    health.attach(asyncio.get_running_loop())
    probes.register(health)
    first = health.evaluate()
    assert first["destination:up"] == CheckResult(False, "not probed yet")
    async with server:
        results = await probes.probe_all()
    names = {"source:inbox", "destination:up", "destination:down", "destination:default"}
    assert set(results) == set(probes.names) == names  # default: the embedded results folder
    assert results["source:inbox"].ok and results["destination:up"].ok
    assert not results["destination:down"].ok
    assert health.evaluate()["destination:up"] == CheckResult(True, "answers HTTP 200")


def test_staging_and_models_checks(tmp_path: Path) -> None:
    staging = Staging(tmp_path, max_bytes=1000)
    check = staging_check(staging, 0.9)
    assert check() == CheckResult(True, "0.0% of staging_max_bytes used")
    staging.reserve(900)
    assert check() == CheckResult(False, "90.0% of staging_max_bytes used")
    never = DxaiConfig.model_validate({"deid": {"pixels": "never"}})
    auto = DxaiConfig.model_validate({"deid": {"pixels": "auto"}})
    assert models_check(never, loaded=False)().ok
    assert models_check(auto, loaded=True)() == CheckResult(True, "pixel models loaded (inprocess)")
    assert not models_check(auto, loaded=False)().ok


# -- the Kafka intake's check --------------------------------------------------------------


@pytest.fixture
async def intake_without_broker() -> AsyncIterator[Callable[[], CheckResult]]:
    from dxai.daemon.intake.kafka import KafkaIntake

    config = KafkaConfig(
        bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        retry_backoff_initial_s=0.05,
        retry_backoff_max_s=0.2,
        request_timeout_ms=2000,
    )
    intake = KafkaIntake(config, pipeline=None, sensor=Sensor(), health=HealthConfig())  # type: ignore[arg-type]
    stop = asyncio.Event()
    task = asyncio.create_task(intake.run(stop))
    try:
        yield intake.check
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE_S)  # stops while still retrying


async def test_kafka_intake_waits_for_its_broker_not_ready(
    intake_without_broker: Callable[[], CheckResult],
) -> None:
    end = time.monotonic() + DEADLINE_S
    result = intake_without_broker()
    while "KafkaConnectionError" not in result.detail:
        assert time.monotonic() < end, result
        await asyncio.sleep(0.05)
        result = intake_without_broker()
    assert result == CheckResult(False, "broker not connected (KafkaConnectionError)")
