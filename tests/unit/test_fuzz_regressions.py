"""Regressions of the bugs the fuzz targets found (``tests/fuzz``), one small case each."""

from __future__ import annotations

import json
import struct
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.encaps import encapsulate, generate_frames

from dxai.actors.deid.fileio import read_dicom
from dxai.actors.outbound import build_pipeline
from dxai.actors.outbound.series import read_member
from dxai.actors.pixels import codec
from dxai.configs.errors import InvalidDicomError, InvalidEventError, SourceNotAllowedError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.events import parse_study_event
from dxai.daemon.gateways.local import scan_folder
from dxai.daemon.gateways.resolve import Routes
from dxai.daemon.intake.dicom_scp import STATUS_CANNOT_UNDERSTAND, StoreScp
from dxai.daemon.jobs import JobStore
from dxai.daemon.jobs.model import ALL_STATES
from dxai.daemon.policy.facts import HeaderFacts, read_header_facts

EVENT: dict[str, Any] = {
    "event_type": "study_received",
    "study_uid": "1.2.3",
    "destination": "d",
    "exchange_job_id": "job-1",
    "source": {"kind": "dicomweb"},
}


def _testdata(name: str) -> str:
    """The path of one of pydicom's bundled test files."""
    path = get_testdata_file(name)
    assert isinstance(path, str), name
    return path


CT = _testdata("CT_small.dcm")
RLE = _testdata("MR_small_RLE.dcm")


def _ct_bytes(values: dict[str, str] | None = None) -> bytes:
    """CT_small written by pydicom, with ``values`` (keyword: value) set first."""
    ds = pydicom.dcmread(CT)
    for keyword, value in (values or {}).items():
        setattr(ds, keyword, value)
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# -- events ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        json.dumps(EVENT).encode("utf-16"),  # json.loads takes UTF-16/32; the store keeps UTF-8
        json.dumps(EVENT).encode("utf-32"),
        b"\xef\xbb\xbf" + json.dumps(EVENT).encode(),  # the job's re-read refuses a BOM
        b"[" * 100_000 + b"]" * 100_000,  # RecursionError
        b'{"schema_version": 1' + b"0" * 5000 + b"}",  # int digit limit: ValueError
    ],
    ids=["utf16", "utf32", "bom", "deep", "digits"],
)
def test_events_that_crashed_the_parser_are_invalid(raw: bytes) -> None:
    with pytest.raises(InvalidEventError):
        parse_study_event(raw)


def test_unknown_keys_are_not_echoed_in_the_reason() -> None:
    key = "DOE^JOHN\n\x1b[31m" + "K" * 100_000
    with pytest.raises(InvalidEventError) as info:
        parse_study_event(json.dumps({**EVENT, key: 1}).encode())
    reason = str(info.value)
    assert "DOE" not in reason and "\n" not in reason and len(reason) < 200
    assert "<key>: extra_forbidden" in reason


def test_a_nul_in_a_local_path_is_refused_not_crashed(tmp_path: Path) -> None:
    config = DxaiConfig.model_validate(
        {"mode": "embedded", "state": {"data_dir": str(tmp_path)}, "deid": {"pixels": "never"}}
    )
    event = parse_study_event(
        json.dumps({**EVENT, "source": {"kind": "local", "path": "/tmp/a\u0000b"}}).encode()
    )
    with pytest.raises(SourceNotAllowedError):
        Routes(config).source_for(event)


# -- DICOM ------------------------------------------------------------------------------------


def test_a_file_cut_after_its_meta_is_not_an_instance(tmp_path: Path) -> None:
    data = _ct_bytes()
    meta_end = 132 + 12 + struct.unpack_from("<I", data, 140)[0]
    with pytest.raises(InvalidDicomError):
        read_dicom(data[:meta_end])
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(data[:meta_end])
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_an_instance_cut_before_its_sop_instance_uid_is_refused(tmp_path: Path) -> None:
    data = _ct_bytes()
    cut = data.index(b"\x08\x00\x18\x00", 132 + 12)  # (0008,0018) SOP Instance UID
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(data[:cut])
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_a_length_that_swallows_the_next_elements_is_refused(tmp_path: Path) -> None:
    """Manufacturer (kept by the profile) with a length reaching into the patient module:
    its value would carry the raw Patient's Name and Study UID past de-identification."""
    data = _ct_bytes({"Manufacturer": "ACME"})
    at = data.index(b"\x08\x00\x70\x00LO", 132 + 12)  # (0008,0070) Manufacturer
    resume = data.index(b"\x10\x00\x20\x00LO", at)  # reading goes on at Patient ID
    damaged = data[: at + 6] + struct.pack("<H", resume - at - 8) + data[at + 8 :]
    assert b"CompressedSamples" in damaged[at:resume]  # the Patient's Name, swallowed
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(damaged)
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_a_huge_geometry_is_refused_before_decoding() -> None:
    """Rows x Columns from a damaged header: GDCM allocated it (12 GB, or an abort)."""
    ds = pydicom.dcmread(_testdata("JPEG2000.dcm"))
    ds.Rows = ds.Columns = 65535
    with pytest.raises(InvalidDicomError, match="too large"):
        codec.decode(ds)


def _with_vr(data: bytes, keyword_tag: bytes, vr: bytes) -> bytes:
    """``data`` with the explicit VR of the first element tagged ``keyword_tag`` replaced."""
    at = data.index(keyword_tag, 132 + 12)
    return data[: at + 4] + vr + data[at + 6 :]


def test_an_unknown_vr_code_reads_as_invalid_dicom(tmp_path: Path) -> None:
    # an empty element is read when first listed: its unknown VR fails there, at read time
    data = _with_vr(_ct_bytes({"AcquisitionDateTime": ""}), b"\x08\x00\x2a\x00", b"\x44\x60")
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(data)
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_a_header_value_its_vr_cannot_hold_leaves_the_member_blank() -> None:
    data = _with_vr(_ct_bytes(), b"\x08\x00\x60\x00", b"UL")  # "CT" is 2 bytes, UL needs 4
    member = read_member(data)
    assert (member.series_uid, member.modality) == ("", "")


def test_policy_header_facts_of_a_damaged_value_are_empty() -> None:
    data = _with_vr(_ct_bytes({"PatientID": "AB"}), b"\x10\x00\x20\x00", b"UL")
    assert read_header_facts(data) == HeaderFacts()


def _deep_sequence(depth: int) -> bytes:
    """Content Sequence nested ``depth`` levels (undefined lengths), explicit VR LE."""
    body = b""
    for _ in range(depth):
        item = struct.pack("<HHI", 0xFFFE, 0xE000, 0xFFFFFFFF) + body
        item += struct.pack("<HHI", 0xFFFE, 0xE00D, 0)
        body = struct.pack("<HH", 0x0040, 0xA730) + b"SQ\0\0" + struct.pack("<I", 0xFFFFFFFF)
        body += item + struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    return body


def test_a_deeply_nested_file_in_a_local_source_is_skipped_not_a_crash(tmp_path: Path) -> None:
    """pydicom recurses per nesting level even to skip a sequence: RecursionError crashed
    the whole job (internal_error) instead of leaving the unreadable file out."""
    data = _ct_bytes()
    study = str(pydicom.dcmread(BytesIO(data)).StudyInstanceUID)
    at = data.index(b"\xe0\x7f\x10\x00")  # before Pixel Data: (0040,A730) sorts before it
    (tmp_path / "deep.dcm").write_bytes(data[:at] + _deep_sequence(20_000) + data[at:])
    (tmp_path / "good.dcm").write_bytes(data)
    found = scan_folder(tmp_path, study)
    assert [p.name for paths in found.values() for p in paths] == ["good.dcm"]


def test_a_deeply_nested_instance_fails_as_invalid_dicom_not_internal(tmp_path: Path) -> None:
    """Reading defers the sequence; de-identifying it recursed past the limit (internal_error)."""
    data = _ct_bytes()
    at = data.index(b"\xe0\x7f\x10\x00")
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(data[:at] + _deep_sequence(5_000) + data[at:])
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_an_unknown_vr_on_a_value_fails_as_invalid_dicom_not_internal(tmp_path: Path) -> None:
    """A non-empty element with an unknown VR code is read lazily: writing it in de-id raised
    NotImplementedError (internal_error)."""
    data = _with_vr(_ct_bytes({"PatientName": "Doe^J"}), b"\x10\x00\x10\x00", b"\x44\x60")
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp_path)}})
    outcome = build_pipeline(config)[0].process(data)
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")


def test_a_panicking_rle_decoder_is_a_decode_error() -> None:
    """pylibjpeg-rle panics (pyo3 PanicException, a BaseException) on a run that overruns
    its segment; decoding must fail like any other bad pixel data."""
    ds = pydicom.dcmread(RLE)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[708] = 224  # a replicate run of 33 bytes past the segment's end
    ds.PixelData = encapsulate([bytes(frame)])
    with pytest.raises(InvalidDicomError):
        codec.decode(ds)


class _UndecodableStore:
    """A C-STORE event whose dataset pydicom cannot decode."""

    request = SimpleNamespace(AffectedSOPInstanceUID="1.2.3")

    @property
    def dataset(self) -> Any:
        raise OSError("No tag to read at file position B90")  # what pydicom raises


def test_the_scp_answers_an_undecodable_dataset_cannot_understand() -> None:
    scp = StoreScp.__new__(StoreScp)  # the handler needs nothing else for a refusal
    assert scp._on_store(_UndecodableStore()) == STATUS_CANNOT_UNDERSTAND


# -- the job store ----------------------------------------------------------------------------


class _WritesBetweenCalls:
    """The store's connection, with another coroutine's write landing right after each
    ``execute`` (what a busy daemon does between ``execute`` and ``fetchall``)."""

    def __init__(self, db: Any, write: str) -> None:
        self._db, self._write = db, write

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)

    async def _execute(self, sql: str, params: Any = ()) -> Any:
        cursor = await self._db.execute(sql, params)
        await self._db.execute(self._write)
        return cursor

    def execute(self, sql: str, params: Any = ()) -> Any:
        return _Awaitable(self._execute(sql, params))


class _Awaitable:
    """``await x`` and ``async with x as cursor``, as aiosqlite's execute allows."""

    def __init__(self, work: Any) -> None:
        self._work = work
        self._cursor: Any = None

    def __await__(self) -> Any:
        return self._work.__await__()

    async def __aenter__(self) -> Any:
        self._cursor = await self._work
        return self._cursor

    async def __aexit__(self, *exc: object) -> None:
        await self._cursor.close()


async def test_job_counts_by_state_are_read_in_one_step(tmp_path: Path) -> None:
    """GROUP BY state over the state index aggregates while rows are fetched: a job concluding
    between ``execute`` and ``fetchall`` made SQLite return a NULL state group (a ``None``
    metric label then failed the conclusion of every job that read it)."""
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        keys = [(await store.claim(f"job-{i}", "1.2.3", "v1", "{}")).job.key for i in range(20)]
        await store.db.execute(
            "UPDATE jobs SET state = 'failed' WHERE job_key NOT IN (?, ?)", keys[:2]
        )
        await store.db.commit()
        # the row the GROUP BY stands on after its first group: the first 'received' job
        write = f"UPDATE jobs SET state = 'fetching' WHERE job_key = '{keys[0]}'"
        store._db = _WritesBetweenCalls(store.db, write)
        counts = await store.count_by_state()
    assert set(counts) == set(ALL_STATES)
    assert sum(counts.values()) == 20


def test_an_odd_length_us_value_fails_as_invalid_dicom_not_internal(tmp_path: Path) -> None:
    """(0028,0106) US with 3 bytes: the pixel step reads it (BytesLengthException)."""
    ds = pydicom.dcmread(CT)
    ds.add_new(0x00280106, "US", 5)  # Smallest Image Pixel Value
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    data = buf.getvalue()
    at = data.index(bytes.fromhex("28000601") + b"US")
    data = data[: at + 6] + (3).to_bytes(2, "little") + b"\x05\x00\x07" + data[at + 10 :]
    config = {"state": {"data_dir": str(tmp_path)}, "deid": {"pixels": "always"}}
    pipeline = build_pipeline(DxaiConfig.model_validate(config))[0]
    outcome = pipeline.process(data)
    assert (outcome.status, outcome.reason) == ("failed", "invalid_dicom")
