"""The fast encoder gives save_as's bytes for every reference file, raw and de-identified."""

from __future__ import annotations

import io
from pathlib import Path

from pydicom.dataset import Dataset

from dxai.actors.deid import Deidentifier, read_dicom
from dxai.actors.deid.encode import encode
from dxai.configs.schema.deid import DeidConfig

KEY = b"integration-test-key-0123456789ab"


def _save_as(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_encode_matches_save_as_on_reference_files(shared_reference: Path) -> None:
    deid = Deidentifier(DeidConfig().profiles["research_longitudinal"], KEY, profile_name="r")
    folders = (shared_reference / "dicom" / "varied", shared_reference / "dicom" / "burned_in")
    files = sorted(p for f in folders for p in f.iterdir() if p.suffix == ".dcm")
    assert len(files) > 40
    different = []
    for path in files:
        ds = read_dicom(path)
        if ds.file_meta.get("MediaStorageSOPClassUID") == "1.2.840.10008.1.3.10":
            continue  # DICOMDIR: not de-identified
        before = encode(ds) == _save_as(ds)
        deid.deidentify(ds, in_place=True)
        if not (before and encode(ds) == _save_as(ds)):
            different.append(path.name)
    assert different == []
