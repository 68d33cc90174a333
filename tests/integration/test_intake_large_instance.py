"""A large instance sent to the C-STORE landing zone by DCMTK's storescu lands on disk without
ever being held whole in the daemon's memory, and no temporary file is left behind.

Before, pynetdicom kept the received dataset in memory, the SCP decoded all of it to read its
Study Instance UID and asked for it again as bytes to write it: a 192 MiB instance cost more
than twice its size in Python allocations (every association and every instance alike).
"""

from __future__ import annotations

import asyncio
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dxai.daemon.intake.dicom_scp import StoreScp
from dxai.daemon.intake.landing import LandingZone

pytestmark = pytest.mark.integration

ROWS, COLS = 8192, 12288  # 16-bit: 192 MiB of pixel data


def _large_ct(path: Path, *, study: bool = True) -> pydicom.Dataset:
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    if not study:
        del ds.StudyInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = ROWS, COLS
    ds.PixelData = np.arange(ROWS * COLS, dtype=np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return ds


async def _storescu(port: int, path: Path) -> str:
    proc = await asyncio.create_subprocess_exec(
        "storescu", "-v", "-xs", "-aec", "DXAI", "127.0.0.1", str(port), str(path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    return out.decode(errors="replace")


async def test_a_large_instance_lands_without_being_held_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temporary = tmp_path / "tmp"  # where pynetdicom writes what it receives
    temporary.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temporary))
    sent, refused = tmp_path / "large.dcm", tmp_path / "no-study.dcm"
    ds = _large_ct(sent)
    _large_ct(refused, study=False)
    zone = LandingZone(tmp_path / "landing")
    arrived: list[str] = []
    scp = StoreScp(
        zone, "DXAI", lambda study, _assoc: arrived.append(study), asyncio.get_running_loop()
    )
    port = scp.start("127.0.0.1", 0)
    tracemalloc.start()
    try:
        await _storescu(port, sent)
        _current, peak = tracemalloc.get_traced_memory()
        answer = await _storescu(port, refused)
    finally:
        tracemalloc.stop()
        await asyncio.to_thread(scp.stop)
    size = ROWS * COLS * 2
    print(f"peak traced {peak >> 20} MiB for a {size >> 20} MiB instance")
    assert peak < size // 4, f"peak {peak >> 20} MiB for a {size >> 20} MiB instance"
    landed = tmp_path / "landing" / "incoming" / str(ds.StudyInstanceUID)
    assert [p.name for p in landed.iterdir()] == [f"{ds.SOPInstanceUID}.dcm"]
    head = pydicom.dcmread(landed / f"{ds.SOPInstanceUID}.dcm", stop_before_pixels=True)
    assert head.SOPInstanceUID == ds.SOPInstanceUID
    assert (landed / f"{ds.SOPInstanceUID}.dcm").stat().st_size > size
    assert arrived == [str(ds.StudyInstanceUID)]
    assert "(error: cannotunderstand)" in answer.lower(), answer  # 0xC000: no Study UID
    assert list(temporary.iterdir()) == []  # neither the landed nor the refused one's file
