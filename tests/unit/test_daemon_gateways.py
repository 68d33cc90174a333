"""multipart/related round trip and the local-folder source."""

from __future__ import annotations

import shutil
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dxai.daemon.gateways import (
    LocalFolderSource,
    MultipartError,
    StudyNotFoundError,
    build_multipart,
    split_multipart,
)


def test_multipart_round_trip_keeps_binary_parts() -> None:
    parts = [b"\x00\r\n--x\r\n\xff" * 10, b"", b"DICM"]
    body, ctype = build_multipart(parts)
    assert split_multipart(body, ctype) == parts
    with pytest.raises(MultipartError):
        split_multipart(body, "multipart/related")


async def test_local_folder_source_groups_by_series(tmp_path: Path) -> None:
    src = get_testdata_file("CT_small.dcm")
    assert src is not None
    shutil.copy(src, tmp_path / "a.dcm")
    (tmp_path / "junk.txt").write_text("not dicom")
    study = str(pydicom.dcmread(src).StudyInstanceUID)
    source = LocalFolderSource(tmp_path)
    series = await source.list_series(study)
    assert len(series) == 1
    items = [b async for b in source.iter_instances(study, series[0])]
    assert items == [Path(src).read_bytes()]
    with pytest.raises(StudyNotFoundError):
        await LocalFolderSource(tmp_path).list_series("1.2.3")
