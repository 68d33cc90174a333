"""Through the real embedded daemon: a configured archive that answers a QIDO-RS query without
end (a broken proxy, a hostile peer) fails that job with ``answer_too_large`` after at most
``max_answer_bytes``, and the daemon goes on to release a study from the real Orthanc."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest_asyncio
from daemon_helpers import embedded, final_outcome
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig

DEADLINE_S = 120.0
LIMIT = 256 * 1024
CHUNK = 64 * 1024  # 4 GiB in all (1 << 16 chunks)


class EndlessArchive:
    """An HTTP server that answers every request with a chunked body that never ends
    (``[`` then spaces: the start of a JSON array); counts the bytes it managed to send."""

    def __init__(self) -> None:
        self.sent = 0
        self.requests: list[bytes] = []  # request lines
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\n"
        piece = b"[" + b" " * (CHUNK - 1)
        chunk = f"{len(piece):X}\r\n".encode() + piece + b"\r\n"
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            self.requests.append(request.split(b"\r\n", 1)[0])
            writer.write(head + b"Transfer-Encoding: chunked\r\n\r\n")
            for _ in range(1 << 16):  # 4 GiB, were it read to the end
                writer.write(chunk)
                await writer.drain()
                self.sent += len(piece)
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])


@pytest_asyncio.fixture
async def archive() -> AsyncIterator[tuple[EndlessArchive, int]]:
    server = EndlessArchive()
    port = await server.start()
    try:
        yield server, port
    finally:
        assert server.server is not None
        server.server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.server.wait_closed(), 10)


def _event(job: str, study: str, source: str) -> bytes:
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": study,
        "destination": "default",
        "exchange_job_id": job,
        "source": {"name": source},
    }
    return json.dumps(event).encode()


async def test_an_endless_qido_answer_fails_its_job_and_the_daemon_goes_on(
    tmp_path: Path,
    clean_orthanc: Any,
    make_ct: Callable[[], Dataset],
    archive: tuple[EndlessArchive, int],
) -> None:
    server, port = archive
    ds = make_ct()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    with clean_orthanc.source.http() as http:
        http.post("/instances", content=buf.getvalue()).raise_for_status()
    hostile = {"kind": "dicomweb", "base_url": f"http://127.0.0.1:{port}/dicom-web"}
    good = {"kind": "dicomweb", "base_url": clean_orthanc.source.dicomweb_url}
    config = DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp_path / "state")},
            "deid": {"pixels": "never"},
            "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
            "metrics": {"enabled": False},
            "pipeline": {"decision_deadline_s": DEADLINE_S, "job_deadline_s": DEADLINE_S},
            "sources": {"broken": {**hostile, "max_answer_bytes": LIMIT}, "archive": good},
        }
    )
    study = str(ds.StudyInstanceUID)
    async with embedded(config) as handle:
        assert await handle.pipeline.submit(_event("endless", study, "broken"), None, "t") == (
            "accepted"
        )
        decision, results = await final_outcome(handle, "endless", DEADLINE_S)
        assert await handle.pipeline.submit(_event("after", study, "archive"), None, "t") == (
            "accepted"
        )
        after, after_results = await final_outcome(handle, "after", DEADLINE_S)
    assert [r["code"] for r in decision["reasons"]] == ["answer_too_large"]
    assert decision["decision"] != "proceed"
    assert results["state"] == "failed" and results["instances_released"] == 0
    queries = [line for line in server.requests if b"/series" in line]
    assert len(queries) == 1  # permanent: not asked again (the rest: the health probe's GET)
    # what the loopback socket buffers of both connections took (a few MiB), never the stream
    assert server.sent < 32 * 1024**2
    reasons = [p.read_text() for p in (handle.results / "dlq").glob("*.reason")]
    assert any(r.startswith("answer_too_large") for r in reasons)
    assert after["decision"] == "proceed" and after_results["instances_released"] == 1
