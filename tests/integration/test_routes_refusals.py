"""Through the real embedded daemon: an event cannot widen what the daemon reaches or sends.

A ``base_url`` of the event's own never receives the archive's credentials (nor any request);
local paths outside the configured roots (``/etc``, a symbolic link out of a root) and
destinations that are not configured end the job blocked with ``source_not_allowed``; the
webhook answers 401 without valid credentials.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from daemon_helpers import embedded, final_outcome
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle
from dxai.daemon.intake.webhook_auth import sign

DEADLINE_S = 120.0


class Recorder:
    """A TCP listener that keeps every byte sent to it and answers nothing useful."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            self.received += await asyncio.wait_for(reader.read(65536), 5)
            writer.write(b"HTTP/1.1 500 Nope\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


@pytest_asyncio.fixture
async def recorder() -> AsyncIterator[tuple[Recorder, int]]:
    rec = Recorder()
    port = await rec.start()
    try:
        yield rec, port
    finally:
        assert rec.server is not None
        rec.server.close()
        await rec.server.wait_closed()


def _config(tmp: Path, **extra: Any) -> DxaiConfig:
    data: dict[str, Any] = {
        "mode": "embedded",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": "never"},
        "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
        "metrics": {"enabled": False},
        "pipeline": {"decision_deadline_s": DEADLINE_S, "job_deadline_s": DEADLINE_S},
    }
    data.update(extra)
    return DxaiConfig.model_validate(data)


def _event(job: str, study: str, source: dict[str, Any], destination: str = "default") -> bytes:
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": study,
        "destination": destination,
        "exchange_job_id": job,
        "source": source,
    }
    return json.dumps(event).encode()


def _dlq_reasons(handle: DaemonHandle) -> list[str]:
    return [p.read_text() for p in sorted((handle.results / "dlq").glob("*.reason"))]


async def _assert_refused(handle: DaemonHandle, job: str, raw: bytes) -> None:
    assert await handle.pipeline.submit(raw, None, "test") == "accepted"
    decision, results = await final_outcome(handle, job, DEADLINE_S)
    assert decision["decision"] == "block"
    assert [r["code"] for r in decision["reasons"]] == ["source_not_allowed"]
    assert results["state"] == "failed" and results["instances_released"] == 0


async def test_event_base_url_never_gets_the_archive_token(
    tmp_path: Path,
    clean_orthanc: Any,
    make_ct: Callable[[], Dataset],
    recorder: tuple[Recorder, int],
) -> None:
    rec, port = recorder
    token = tmp_path / "archive-token"
    token.write_text("archive-secret-token\n")
    ds = make_ct()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with clean_orthanc.source.http() as http:
        http.post("/instances", content=buf.getvalue()).raise_for_status()
    archive = {"base_url": clean_orthanc.source.dicomweb_url, "bearer_token_file": str(token)}
    study = str(ds.StudyInstanceUID)
    async with embedded(_config(tmp_path, source_dicomweb=archive)) as handle:
        for n, url in enumerate(
            (f"http://127.0.0.1:{port}/dicom-web", f"http://localhost:{port}/", "http://x@h/")
        ):
            source = {"kind": "dicomweb", "base_url": url}
            await _assert_refused(handle, f"steal-{n}", _event(f"steal-{n}", study, source))
        # the configured archive, spelled otherwise: its own endpoint and token are used
        same = clean_orthanc.source.dicomweb_url.replace("http://", "HTTP://") + "/"
        raw = _event("own", study, {"kind": "dicomweb", "base_url": same})
        assert await handle.pipeline.submit(raw, None, "test") == "accepted"
        decision, results = await final_outcome(handle, "own", DEADLINE_S)
    assert rec.connections == 0 and b"archive-secret-token" not in rec.received
    assert b"authorization" not in rec.received.lower()
    assert decision["decision"] == "proceed" and results["instances_released"] == 1
    assert sum(r.startswith("source_not_allowed") for r in _dlq_reasons(handle)) == 3


async def test_local_paths_outside_the_roots_are_refused(
    tmp_path: Path, make_ct: Callable[[], Dataset]
) -> None:
    root, outside = tmp_path / "inbox", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    ds = make_ct()
    ds.save_as(outside / "ct.dcm", enforce_file_format=True)
    (root / "link").symlink_to(outside, target_is_directory=True)
    ds.save_as(root / "ct.dcm", enforce_file_format=True)
    study = str(ds.StudyInstanceUID)
    sources = {"inbox": {"kind": "local", "root": str(root)}}
    async with embedded(_config(tmp_path, sources=sources)) as handle:
        for job, path in (("etc", "/etc"), ("link", str(root / "link")), ("out", str(outside))):
            await _assert_refused(handle, job, _event(job, study, {"kind": "local", "path": path}))
        raw = _event("inside", study, {"kind": "local", "name": "inbox"})
        assert await handle.pipeline.submit(raw, None, "test") == "accepted"
        decision, _results = await final_outcome(handle, "inside", DEADLINE_S)
    assert decision["decision"] == "proceed"
    released = list((handle.results / "instances").rglob("*.dcm"))
    assert len(released) == 1  # the copy inside the root, never the one behind the link


async def test_unconfigured_destination_is_refused(
    tmp_path: Path, make_ct: Callable[[], Dataset]
) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    ds = make_ct()
    ds.save_as(root / "ct.dcm", enforce_file_format=True)
    config = _config(
        tmp_path,
        sources={"inbox": {"kind": "local", "root": str(root)}},
        destinations={"partner": {"kind": "folder", "path": str(tmp_path / "partner")}},
    )
    study = str(ds.StudyInstanceUID)
    async with embedded(config) as handle:
        await _assert_refused(handle, "nowhere", _event("nowhere", study, {"name": "inbox"}, "x"))
        raw = _event("partner", study, {"name": "inbox"}, "partner")
        assert await handle.pipeline.submit(raw, None, "test") == "accepted"
        decision, _results = await final_outcome(handle, "partner", DEADLINE_S)
    assert decision["decision"] == "proceed"
    assert len(list((tmp_path / "partner").rglob("*.dcm"))) == 1
    assert not list((handle.results / "instances").rglob("*.dcm"))


@pytest.mark.parametrize("scheme", ["bearer", "hmac"])
async def test_webhook_needs_credentials(
    tmp_path: Path, make_ct: Callable[[], Dataset], scheme: str
) -> None:
    root = tmp_path / "inbox"
    root.mkdir()
    ds = make_ct()
    ds.save_as(root / "ct.dcm", enforce_file_format=True)
    secret = tmp_path / "webhook-secret"
    secret.write_text("webhook-secret-value\n")
    key = "webhook_bearer_token_file" if scheme == "bearer" else "webhook_hmac_secret_file"
    config = _config(tmp_path, sources={"inbox": {"kind": "local", "root": str(root)}})
    embedded_cfg = config.embedded.model_copy(update={key: str(secret)})
    config = config.model_copy(update={"embedded": embedded_cfg})
    body = _event("hooked", str(ds.StudyInstanceUID), {"name": "inbox"})
    good = (
        {"Authorization": "Bearer webhook-secret-value"}
        if scheme == "bearer"
        else {"X-Dxai-Signature": sign(b"webhook-secret-value", body)}
    )
    bad = (
        {"Authorization": "Bearer wrong"}
        if scheme == "bearer"
        else {"X-Dxai-Signature": sign(b"wrong", body)}
    )
    async with embedded(config) as handle:
        assert handle.ports is not None
        url = f"http://127.0.0.1:{handle.ports.http}"
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            missing = await http.post("/events", content=body)
            wrong = await http.post("/events", content=body, headers=bad)
            assert await handle.store.unfinished() == [] and handle.pipeline.in_flight == 0
            ok = await http.post("/events", content=body, headers=good)
        decision, _results = await final_outcome(handle, "hooked", DEADLINE_S)
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json() == {"error": "intake_unauthorized"}
    assert (ok.status_code, ok.json()) == (202, {"status": "accepted"})
    assert decision["decision"] == "proceed"
    assert not list((handle.results / "dlq").glob("*.bin"))  # a 401 is not a dead letter
