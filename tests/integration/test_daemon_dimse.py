"""DIMSE gateways against the real Orthancs: C-STORE sink, C-FIND + C-GET/C-MOVE, and jobs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.configs.errors import (
    RetrieveIncompleteError,
    RetrieveRefusedError,
    ServiceUnavailableError,
)
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.daemon.gateways import DimseSink, DimseSource, MoveTarget
from dxai.observability.metrics import Sensor

CALLING_AE = "DXAI"  # registered in both Orthancs by scripts/services/orthanc.sh
DEADLINE_S = 120.0


def _peer(orthanc: Any) -> DimseEndpoint:
    return DimseEndpoint(ae_title=orthanc.aet, host=orthanc.host, port=orthanc.dicom_port)


def _encode(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _study(make_ct: Callable[[], Dataset], series: int, per_series: int) -> list[bytes]:
    """One study of ``series`` x ``per_series`` CT instances (fresh UIDs)."""
    template = make_ct()
    out = []
    for _ in range(series):
        template.SeriesInstanceUID = generate_uid()
        for _ in range(per_series):
            template.SOPInstanceUID = generate_uid()
            template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
            out.append(_encode(template))
    return out


def _upload(orthanc: Any, instances: list[bytes]) -> None:
    with httpx.Client(base_url=orthanc.base_url, timeout=30) as http:
        for raw in instances:
            http.post("/instances", content=raw).raise_for_status()


def _uids(instances: list[bytes]) -> set[str]:
    return {str(pydicom.dcmread(BytesIO(b)).SOPInstanceUID) for b in instances}


async def test_c_store_sink_to_dest(clean_orthanc: Any, make_ct: Callable[[], Dataset]) -> None:
    instances = _study(make_ct, 2, 2)
    sink = DimseSink(_peer(clean_orthanc.dest), CALLING_AE)
    report = await sink.store(instances)
    assert (report.stored, report.failed_uids) == (4, ())
    assert clean_orthanc.dest.instance_count() == 4
    study = str(pydicom.dcmread(BytesIO(instances[0])).StudyInstanceUID)
    stored = clean_orthanc.dest.dicomweb().search_for_instances(study)
    assert {i["00080018"]["Value"][0] for i in stored} == _uids(instances)


def _open_dcm_files() -> set[str]:
    """The .dcm files this process holds open (Linux /proc)."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        with contextlib.suppress(OSError):
            target = str(fd.readlink())
            if target.split(" (deleted)")[0].endswith(".dcm"):
                found.add(target)
    return found


async def test_c_find_and_c_get_source(clean_orthanc: Any, make_ct: Callable[[], Dataset]) -> None:
    instances = _study(make_ct, 3, 2)
    _upload(clean_orthanc.source, instances)
    study = str(pydicom.dcmread(BytesIO(instances[0])).StudyInstanceUID)
    source = DimseSource(_peer(clean_orthanc.source), CALLING_AE)
    series = await source.list_series(study)
    assert len(series) == 3
    before = _open_dcm_files()
    fetched = [raw for s in series async for raw in source.iter_instances(study, s)]
    assert _uids(fetched) == _uids(instances) and len(fetched) == 6
    # received to temporary files (never whole in memory), each closed once handed over
    assert _open_dcm_files() <= before
    first = pydicom.dcmread(BytesIO(fetched[0]))
    assert first.file_meta.TransferSyntaxUID and first.pixel_array.shape == (128, 128)
    assert await source.list_series(generate_uid()) == []


@pytest.fixture
def move_target(clean_orthanc: Any) -> Iterator[MoveTarget]:
    """A C-MOVE destination on a free local port, registered in the source Orthanc (REST)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    target = MoveTarget(ae_title="DXAIMOVE", port=port, host="127.0.0.1", timeout_s=60)
    body = {"AET": target.ae_title, "Host": target.host, "Port": port}
    with clean_orthanc.source.http() as http:
        http.put("/modalities/dxaimove", json=body).raise_for_status()
    try:
        yield target
    finally:
        with clean_orthanc.source.http() as http:
            http.delete("/modalities/dxaimove")


async def test_c_find_and_c_move_source(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset], move_target: MoveTarget
) -> None:
    instances = _study(make_ct, 2, 3)
    _upload(clean_orthanc.source, instances)
    study = str(pydicom.dcmread(BytesIO(instances[0])).StudyInstanceUID)
    work = tmp_path / "moves"
    peer = _peer(clean_orthanc.source)
    source = DimseSource(peer, CALLING_AE, "c-move", move_target, work)
    series = await source.list_series(study)
    fetched = [raw for s in series async for raw in source.iter_instances(study, s)]
    assert len(series) == 2 and len(fetched) == 6 and _uids(fetched) == _uids(instances)
    assert pydicom.dcmread(BytesIO(fetched[0])).pixel_array.shape == (128, 128)
    await source.aclose()
    assert not any(work.iterdir())  # moved files are removed once read
    unknown = MoveTarget(ae_title="NOSUCHAE", port=move_target.port, timeout_s=30)
    bad = DimseSource(peer, CALLING_AE, "c-move", unknown, work)
    with pytest.raises(RetrieveRefusedError):
        [raw async for raw in bad.iter_instances(study, series[0])]
    await bad.aclose()


async def test_move_scp_refuses_every_sender_but_the_expected_one(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset], move_target: MoveTarget
) -> None:
    instances = _study(make_ct, 1, 2)
    _upload(clean_orthanc.source, instances)
    study = str(pydicom.dcmread(BytesIO(instances[0])).StudyInstanceUID)
    work = tmp_path / "moves"
    peer = _peer(clean_orthanc.source)
    # the SCP waits for "NOTSOURCE": Orthanc (calling AE SOURCE) is a stranger and is rejected
    expecting_other = replace(move_target, sender_ae="NOTSOURCE")
    source = DimseSource(peer, CALLING_AE, "c-move", expecting_other, work)
    series = await source.list_series(study)
    with pytest.raises((RetrieveIncompleteError, RetrieveRefusedError, ServiceUnavailableError)):
        [raw async for raw in source.iter_instances(study, series[0])]
    await source.aclose()
    assert not work.exists() or not any(p.is_file() for p in work.rglob("*"))


@pytest.mark.parametrize("method", ["c-get", "c-move"])
async def test_job_fetches_by_dimse_and_stores_by_c_store(
    tmp_path: Path,
    clean_orthanc: Any,
    make_ct: Callable[[], Dataset],
    move_target: MoveTarget,
    method: str,
) -> None:
    instances = _study(make_ct, 2, 2)
    _upload(clean_orthanc.source, instances)
    study = str(pydicom.dcmread(BytesIO(instances[0])).StudyInstanceUID)
    src, dst = clean_orthanc.source, clean_orthanc.dest
    peer = {"ae_title": src.aet, "host": src.host, "port": src.dicom_port}
    move: dict[str, Any] = {}
    if method == "c-move":
        move = {
            "move_destination_ae": move_target.ae_title,
            "move_destination_port": move_target.port,
        }
    config = DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp_path)},
            "deid": {"pixels": "never"},
            "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
            "destination_dimse": {"ae_title": dst.aet, "host": dst.host, "port": dst.dicom_port},
            "metrics": {"enabled": False},
            "sources": {"pacs": {"kind": "dimse", **peer, "method": method, **move}},
        }
    )
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": study,
        "destination": "dest",
        "exchange_job_id": "dimse-1",
        # the configured peer, spelled out (an event may also just say {"name": "pacs"})
        "source": {"kind": "dimse", **peer, "method": method, **move},
    }
    stop = asyncio.Event()
    ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
    daemon = asyncio.create_task(run_daemon(config, stop, Sensor(), ready=ready.set_result))
    try:
        handle = await asyncio.wait_for(ready, 60)
        assert await handle.pipeline.submit(json.dumps(event).encode(), None, "test") == "accepted"
        results = await _wait_results(handle.results / "results")
    finally:
        stop.set()
        await asyncio.wait_for(daemon, 60)
    assert results["state"] == "released" and results["instances_released"] == 4
    moves = tmp_path / "moves"  # C-MOVE's per-series folders are gone after the job
    assert not moves.exists() or not any(moves.iterdir())
    out = dst.dicomweb().retrieve_study(results["deidentified_study_uid"])
    assert len(out) == dst.instance_count() == 4
    assert {str(d.PatientName) for d in out}.isdisjoint({str(make_ct().PatientName)})


async def _wait_results(folder: Path) -> dict[str, Any]:
    end = time.monotonic() + DEADLINE_S
    while not (files := sorted(folder.glob("*.json"))):
        if time.monotonic() > end:
            pytest.fail("no results before the deadline")
        await asyncio.sleep(0.1)
    return dict(json.loads(files[0].read_text(encoding="utf-8")))
