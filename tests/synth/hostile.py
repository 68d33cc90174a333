"""Hostile instances: valid DICOM built to exhaust a reader, not to be read."""

from __future__ import annotations

import io

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian, generate_uid


def deflated_instance(padding: int, syntax: str = DeflatedExplicitVRLittleEndian) -> bytes:
    """pydicom's CT_small as a Part 10 file in ``syntax`` (deflated by default) with ``padding``
    zero bytes in a private element: deflated, sixteen MiB of padding is about 16 KiB of file,
    a decompression bomb at any size."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    ds.file_meta.TransferSyntaxUID = UID(syntax)
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.add_new(0x00091010, "LO", "ACME")
    ds.add_new(0x00091011, "OB", b"\0" * padding)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()
