"""Part 10 encoding of a de-identified dataset, with a fast path for unchanged elements.

Elements that de-identification left alone are still raw (their bytes as read), and pydicom's
writer spends most of its time passing each one through several layers of Python.  For the
common case (little endian, implicit or explicit VR, not deflated, character set and encoding
unchanged since reading) :func:`encode` writes those raw elements itself: tag, VR, length and
the original bytes, exactly as ``pydicom.filewriter.write_data_element`` writes a raw element.
Every other element (new or changed values, sequences, pixel data, undefined lengths, values
too long for a 16-bit length) goes through pydicom's own ``write_data_element``, and anything
unusual falls back to ``Dataset.save_as`` for the whole file, so the bytes are always the ones
``save_as(..., enforce_file_format=True)`` would write.
"""

from __future__ import annotations

import io
import struct
from copy import deepcopy

from pydicom.charset import default_encoding
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.tag import tag_in_exception
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32

_PIXEL_DATA = 0x7FE00010
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


def _raw_header(elem: RawDataElement, implicit: bool) -> bytes | None:
    """Tag, VR and length of an unchanged element; None when pydicom must write it."""
    value = elem.value
    if elem.length == _UNDEFINED or not isinstance(value, bytes):
        return None
    tag = int(elem.tag)
    head = _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + _U32.pack(len(value))
    vr = elem.VR
    if not vr or len(vr) != 2:
        return None
    if vr in _LONG_VRS:
        return head + vr.encode(default_encoding) + b"\x00\x00" + _U32.pack(len(value))
    if len(value) > 0xFFFF:  # pydicom rewrites the VR as UN (with a warning): leave it to it
        return None
    return head + vr.encode(default_encoding) + _U16.pack(len(value))


def _write_body(fp: DicomBytesIO, ds: Dataset) -> None:
    """``pydicom.filewriter.write_dataset`` for an unchanged encoding, raw elements inline."""
    implicit = fp.is_implicit_VR
    encodings = ds.get("SpecificCharacterSet", default_encoding)
    for tag in sorted(ds.keys()):
        if tag & 0xFFFF == 0 and tag >> 16 > 6:
            continue  # retired group length: pydicom does not write it either
        elem = ds.get_item(tag)
        head = None
        if isinstance(elem, RawDataElement) and tag != _PIXEL_DATA:
            head = _raw_header(elem, implicit)
        if head is None:
            with tag_in_exception(tag):
                write_data_element(fp, elem, encodings)  # type: ignore[arg-type]
        else:
            fp.write(head)
            fp.write(elem.value)  # type: ignore[union-attr]


def _fast_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax when the fast path applies to ``ds``, else None."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if isinstance(meta, FileMetaDataset) else None
    if not isinstance(tsyntax, UID) or tsyntax.is_private or not tsyntax.is_transfer_syntax:
        return None
    if not tsyntax.is_little_endian or tsyntax == DeflatedExplicitVRLittleEndian:
        return None
    if ds.original_encoding != (tsyntax.is_implicit_VR, True):
        return None  # pydicom re-encodes every element in this case
    if ds.original_character_set != ds._character_set:
        return None
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        return None
    if any(int(tag) >> 16 in (0, 2) for tag in list(ds.keys())):
        return None  # pydicom refuses these: let it raise
    return tsyntax


def _write_header(fp: DicomBytesIO, ds: Dataset) -> None:
    """Preamble, prefix and File Meta as ``dcmwrite(enforce_file_format=True)`` writes them."""
    meta = deepcopy(ds.file_meta)
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        in_meta, in_ds = meta.get(meta_keyword, None), ds.get(keyword, None)
        if in_meta is None or (in_ds and in_ds != in_meta):
            setattr(meta, meta_keyword, in_ds)
    validate_file_meta(meta, enforce_standard=True)
    fp.write(getattr(ds, "preamble", None) or b"\x00" * 128)
    fp.write(b"DICM")
    write_file_meta_info(fp, meta, enforce_standard=True)


def encode(ds: Dataset) -> bytes:
    """The Part 10 file ``ds.save_as(..., enforce_file_format=True)`` would write."""
    tsyntax = _fast_syntax(ds)
    if tsyntax is None:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    if _PIXEL_DATA in ds:
        ds[_PIXEL_DATA].is_undefined_length = tsyntax.is_compressed  # as dcmwrite does
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = tsyntax.is_implicit_VR, True
    _write_header(fp, ds)
    _write_body(fp, ds)
    return fp.getvalue()
