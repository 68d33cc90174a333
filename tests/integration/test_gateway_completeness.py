"""Complete-or-nothing retrieval and bounded streaming against the real Orthancs.

C-GET of a series stored in compressed syntaxes (JPEG 2000, JPEG-LS, RLE, JPEG, deflated, and
one transcoded here by DCMTK's ``dcmcjpls``), a series that lost an instance between list and
fetch (DICOMweb, C-GET, C-MOVE), failed C-FINDs, WADO-RS streaming against the whole body, and
STOW-RS in pieces.  (HTJ2K is proposed too, but Orthanc 1.10's DCMTK cannot send it over DIMSE:
such a series ends in ``RetrieveIncompleteError``, which is the point.)
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
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
from dxai.configs.schema.services import DicomWebEndpoint, DimseEndpoint
from dxai.daemon.gateways import DicomWebGateway, DimseSink, DimseSource, MoveTarget
from dxai.daemon.gateways.dimse import c_find_blocking, c_get_series_blocking

CALLING_AE = "DXAI"  # registered in both Orthancs by scripts/services/orthanc.sh
VARIED = Path(__file__).resolve().parents[1] / "data" / "reference" / "dicom" / "varied"
COMPRESSED = [
    "pydicom__MR_small_jp2klossless.dcm",  # JPEG 2000 lossless: Orthanc cannot decode it
    "pydicom__JPEG2000.dcm",
    "pydicom__MR_small_jpeg_ls_lossless.dcm",
    "pydicom__JPEGLSNearLossless_08.dcm",
    "pydicom__MR_small_RLE.dcm",
    "pydicom__JPGExtended.dcm",
    "pydicom__SC_rgb_jpeg_dcmtk.dcm",
    "pydicom__image_dfl.dcm",
    "pydicom__CT_small.dcm",
]


def _peer(orthanc: Any, port: int | None = None) -> DimseEndpoint:
    port = orthanc.dicom_port if port is None else port
    return DimseEndpoint(ae_title=orthanc.aet, host=orthanc.host, port=port)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _encode(ds: Dataset) -> bytes:
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _into_series(ds: Dataset, study: str, series: str) -> bytes:
    """``ds`` as one instance of one patient's ``study``/``series`` (a fresh SOP Instance UID)."""
    ds.PatientID, ds.PatientName = "DXAI-GW", "Gateway^Test"
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return _encode(ds)


def _jpeg_ls_by_dcmtk(tmp: Path) -> Dataset:
    """CT_small transcoded to JPEG-LS lossless by DCMTK's ``dcmcjpls``."""
    exe = shutil.which("dcmcjpls")
    if exe is None:
        pytest.fail("DCMTK's dcmcjpls is not installed (apt-get install dcmtk)")
    out = tmp / "ct-jls.dcm"
    subprocess.run([exe, str(VARIED / "pydicom__CT_small.dcm"), str(out)], check=True, timeout=60)
    return pydicom.dcmread(out)


def _compressed_series(tmp: Path) -> tuple[str, str, list[bytes]]:
    """A study of one series of the compressed reference files (plus DCMTK's JPEG-LS)."""
    study, series = generate_uid(), generate_uid()
    datasets = [pydicom.dcmread(VARIED / name) for name in COMPRESSED]
    datasets.append(_jpeg_ls_by_dcmtk(tmp))
    return study, series, [_into_series(ds, study, series) for ds in datasets]


def _ct_series(count: int) -> tuple[str, str, list[bytes]]:
    study, series = generate_uid(), generate_uid()
    template = pydicom.dcmread(VARIED / "pydicom__CT_small.dcm")
    return study, series, [_into_series(template, study, series) for _ in range(count)]


def _upload(orthanc: Any, instances: list[bytes]) -> list[str]:
    """POST each instance to Orthanc's REST API; their Orthanc ids."""
    with orthanc.http() as http:
        return [
            http.post("/instances", content=raw).raise_for_status().json()["ID"]
            for raw in instances
        ]


def _identity(instances: list[bytes]) -> dict[str, tuple[str, bytes]]:
    """SOP Instance UID -> (transfer syntax, pixel data bytes as stored)."""
    out = {}
    for raw in instances:
        ds = pydicom.dcmread(BytesIO(raw))
        out[str(ds.SOPInstanceUID)] = (str(ds.file_meta.TransferSyntaxUID), bytes(ds.PixelData))
    return out


@pytest.fixture
def move_target(clean_orthanc: Any) -> Iterator[MoveTarget]:
    """A C-MOVE destination on a free local port, registered in the source Orthanc (REST)."""
    target = MoveTarget(ae_title="DXAIGWMOVE", port=_free_port(), host="127.0.0.1", timeout_s=60)
    body = {"AET": target.ae_title, "Host": target.host, "Port": target.port}
    with clean_orthanc.source.http() as http:
        http.put("/modalities/dxaigwmove", json=body).raise_for_status()
    try:
        yield target
    finally:
        with clean_orthanc.source.http() as http:
            http.delete("/modalities/dxaigwmove")


def _source(kind: str, orthanc: Any, move_target: MoveTarget, work: Path) -> Any:
    if kind == "dicomweb":
        return DicomWebGateway(DicomWebEndpoint(base_url=orthanc.dicomweb_url))
    if kind == "c-move":
        return DimseSource(_peer(orthanc), CALLING_AE, "c-move", move_target, work)
    return DimseSource(_peer(orthanc), CALLING_AE, "c-get", work_dir=work)


async def test_c_get_uncompressed_only_contexts_lose_instances_loudly(
    tmp_path: Path, clean_orthanc: Any
) -> None:
    """What the archive cannot send uncompressed (JPEG 2000, HTJ2K) fails the series now."""
    study, series, instances = _compressed_series(tmp_path)
    _upload(clean_orthanc.source, instances)
    folder = tmp_path / "old"
    folder.mkdir()
    with pytest.raises(RetrieveIncompleteError, match="failed"):
        c_get_series_blocking(
            _peer(clean_orthanc.source), CALLING_AE, (study, series), folder, compressed=False
        )


@pytest.mark.parametrize("kind", ["c-get", "c-move", "dicomweb"])
async def test_compressed_series_arrives_whole_in_its_own_syntaxes(
    tmp_path: Path, clean_orthanc: Any, move_target: MoveTarget, kind: str
) -> None:
    study, series, instances = _compressed_series(tmp_path)
    _upload(clean_orthanc.source, instances)
    work = tmp_path / "work"
    source = _source(kind, clean_orthanc.source, move_target, work)
    try:
        assert await source.list_series(study) == [series]
        fetched = [raw async for raw in source.iter_instances(study, series)]
    finally:
        await source.aclose()
    assert len(fetched) == len(instances)
    assert _identity(fetched) == _identity(instances)  # same syntax, same compressed pixels
    assert not work.exists() or not any(p.is_file() for p in work.rglob("*"))


@pytest.mark.parametrize("kind", ["c-get", "c-move", "dicomweb"])
async def test_instance_gone_between_list_and_fetch_is_incomplete(
    tmp_path: Path, clean_orthanc: Any, move_target: MoveTarget, kind: str
) -> None:
    study, series, instances = _ct_series(3)
    ids = _upload(clean_orthanc.source, instances)
    source = _source(kind, clean_orthanc.source, move_target, tmp_path / "work")
    try:
        assert await source.list_series(study) == [series]  # the archive says: 3 instances
        with clean_orthanc.source.http() as http:
            http.delete(f"/instances/{ids[1]}").raise_for_status()
        got = []
        with pytest.raises(RetrieveIncompleteError, match="2 of 3"):
            async for raw in source.iter_instances(study, series):
                got.append(raw)
        assert len(got) == 2
    finally:
        await source.aclose()


async def test_a_consumer_that_stops_early_ends_the_c_get_at_once(
    tmp_path: Path, clean_orthanc: Any
) -> None:
    study, series, instances = _ct_series(40)
    _upload(clean_orthanc.source, instances)
    work = tmp_path / "work"
    source = DimseSource(_peer(clean_orthanc.source), CALLING_AE, work_dir=work)
    await source.list_series(study)
    stream = source.iter_instances(study, series)
    assert pydicom.dcmread(BytesIO(await anext(stream))).SeriesInstanceUID == series
    started = time.monotonic()
    await stream.aclose()  # the association is aborted, not waited out (DIMSE timeout: 30 s)
    assert time.monotonic() - started < 5.0
    assert not any(p.is_file() for p in work.rglob("*"))
    await source.aclose()
    assert not any(work.iterdir())


# pynetdicom leaves the refused socket to the garbage collector
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_failed_c_find_raises_and_no_match_is_empty(clean_orthanc: Any) -> None:
    orthanc = clean_orthanc.source
    study, _series, instances = _ct_series(1)
    _upload(orthanc, instances)
    nobody = DimseSource(_peer(orthanc, port=_free_port()), CALLING_AE)
    with pytest.raises(ServiceUnavailableError):
        await nobody.list_series(study)
    bad = Dataset()
    bad.QueryRetrieveLevel, bad.StudyInstanceUID = "NOSUCHLEVEL", study
    with pytest.raises(RetrieveRefusedError):
        c_find_blocking(_peer(orthanc), CALLING_AE, bad)
    source = DimseSource(_peer(orthanc), CALLING_AE)
    assert await source.list_series(generate_uid()) == []  # genuinely no match
    assert len(await source.list_series(study)) == 1
    offline = DicomWebGateway(DicomWebEndpoint(base_url=f"http://127.0.0.1:{_free_port()}"))
    with pytest.raises(ServiceUnavailableError):
        await offline.list_series(study)
    await offline.aclose()


def _whole_body_parts(orthanc: Any, study: str, series: str) -> list[bytes]:
    """The series as the whole WADO-RS body read at once, split the simple way."""
    accept = 'multipart/related; type="application/dicom"; transfer-syntax=*'
    url = f"{orthanc.dicomweb_url}/studies/{study}/series/{series}"
    resp = httpx.get(url, headers={"Accept": accept}, timeout=60).raise_for_status()
    boundary = resp.headers["content-type"].split("boundary=")[1].split(";")[0].strip('"')
    chunks = (b"\r\n" + resp.content).split(b"\r\n--" + boundary.encode())
    return [c[c.index(b"\r\n\r\n") + 4 :] for c in chunks[1:] if not c.startswith(b"--")]


async def test_wado_streaming_yields_the_whole_body_bytes(
    tmp_path: Path, clean_orthanc: Any
) -> None:
    orthanc = clean_orthanc.source
    study, series, instances = _ct_series(12)
    _upload(orthanc, instances)
    gateway = DicomWebGateway(DicomWebEndpoint(base_url=orthanc.dicomweb_url))
    try:  # not listed first: the series' count is asked for by QIDO-RS before WADO-RS
        streamed = [raw async for raw in gateway.iter_instances(study, series)]
    finally:
        await gateway.aclose()
    assert streamed == _whole_body_parts(orthanc, study, series)
    assert len(streamed) == 12 and _identity(streamed) == _identity(instances)


async def test_stow_sends_pieces_and_stores_everything(tmp_path: Path, clean_orthanc: Any) -> None:
    dest = clean_orthanc.dest
    study, _series, instances = _ct_series(7)
    staged: list[bytes | Path] = []
    for index, raw in enumerate(instances):  # the pipeline hands files on disk or bytes
        path = tmp_path / f"{index}.dcm"
        if index % 2:
            path.write_bytes(raw)
        staged.append(path if index % 2 else raw)
    endpoint = DicomWebEndpoint(base_url=dest.dicomweb_url, stow_max_instances=3)
    gateway = DicomWebGateway(endpoint)
    posts: list[int] = []

    async def count(request: httpx.Request) -> None:
        if request.method == "POST":
            posts.append(int(request.headers["content-length"]))

    gateway._http.event_hooks["request"].append(count)
    try:
        report = await gateway.store(staged)
    finally:
        await gateway.aclose()
    assert (report.stored, report.failed_uids, len(posts)) == (7, (), 3)
    assert dest.instance_count() == 7
    stored = dest.dicomweb().search_for_instances(study)
    assert {i["00080018"]["Value"][0] for i in stored} == set(_identity(instances))


async def test_c_store_sink_sends_files_in_their_syntax(tmp_path: Path, clean_orthanc: Any) -> None:
    _study, _series, instances = _compressed_series(tmp_path)
    files = []
    for index, raw in enumerate(instances):
        files.append(tmp_path / f"{index}.dcm")
        files[-1].write_bytes(raw)
    report = await DimseSink(_peer(clean_orthanc.dest), CALLING_AE).store(files)
    assert (report.stored, report.failed_uids) == (len(files), ())
    assert clean_orthanc.dest.instance_count() == len(files)
