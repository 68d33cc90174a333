"""Reading DICOM input tolerantly: Part 10 files or bytes, with or without a preamble.

"Strict when writing, tolerant when reading": a missing preamble or file meta is accepted, a
truncated value is refused (:func:`check_complete`), and errors never quote values (PHI).
The per-instance pipeline (:mod:`dxai.actors.outbound`) reads every input through here.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

from pydicom import dcmread
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.tag import BaseTag
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dxai.actors.deid.values import elements_of
from dxai.actors.inflate import check_part10
from dxai.configs.errors import InvalidDicomError

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
_IN_MEMORY_MAX = 256 * 1024 * 1024  # larger files are parsed from disk (less peak memory)
_QUOTED = re.compile(r"(['\"]).*?\1")


def safe_reason(exc: BaseException) -> str:
    """An error description without quoted values (which could carry PHI)."""
    text = _QUOTED.sub("<value>", str(exc)).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:160]}"


def is_probably_dicom(path: Path) -> bool:
    """True for a Part 10 file (``DICM`` at 128) or a raw dataset starting in group 0002/0008."""
    try:
        with path.open("rb") as handle:
            head = handle.read(132)
    except OSError:
        return False
    if len(head) == 132 and head[128:132] == b"DICM":
        return True
    return len(head) >= 8 and head[:2] in (b"\x02\x00", b"\x08\x00", b"\x00\x08")


def _looks_like_dataset(ds: Dataset) -> bool:
    return "SOPClassUID" in ds or "SOPInstanceUID" in ds


def _ensure_meta(ds: FileDataset) -> None:
    meta = ds.file_meta if isinstance(ds.file_meta, FileMetaDataset) else FileMetaDataset()
    if "TransferSyntaxUID" not in meta:
        implicit, little = ds.original_encoding
        if implicit:
            meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    ds.file_meta = meta


def _source(source: Path | bytes) -> Path | io.BytesIO:
    """Small files are read in one call and parsed from memory (faster than many small reads)."""
    if isinstance(source, bytes):
        return io.BytesIO(source)
    if source.stat().st_size > _IN_MEMORY_MAX:
        return source
    return io.BytesIO(source.read_bytes())


def read_dicom(src: Path | bytes) -> FileDataset:
    """Read a DICOM file or bytes tolerantly (missing preamble allowed); else InvalidDicomError."""
    try:
        source = _source(src)
        check_part10(source)  # a decompression bomb is refused before pydicom inflates it
        try:
            ds = dcmread(source)
        except PydicomInvalidDicomError:
            if isinstance(source, io.BytesIO):
                source.seek(0)
            try:
                ds = dcmread(source, force=True)
            except Exception as exc:  # forced reads of garbage fail in many ways
                raise InvalidDicomError(f"not a DICOM file ({safe_reason(exc)})") from exc
            if not _looks_like_dataset(ds):
                raise InvalidDicomError(
                    "not a DICOM file (no preamble and no SOP identity)"
                ) from None
    except InvalidDicomError:
        raise
    except (OSError, EOFError) as exc:
        raise InvalidDicomError(f"unreadable DICOM file ({safe_reason(exc)})") from exc
    except Exception as exc:  # a damaged file fails pydicom in many ways (unknown VR, deep
        # sequences: RecursionError, value lengths that do not fit their VR...)
        raise InvalidDicomError(f"unreadable DICOM file ({safe_reason(exc)})") from exc
    if not _is_instance(ds) and not _is_media_directory(ds):
        # a valid preamble and file meta over an empty dataset, or one cut before its SOP
        # Instance UID: de-identified, it would "pass" as an output no destination can store
        raise InvalidDicomError("not a DICOM instance (no SOP Class and Instance UID)")
    _ensure_meta(ds)
    return ds


def _is_instance(ds: Dataset) -> bool:
    return "SOPClassUID" in ds and "SOPInstanceUID" in ds


def _is_media_directory(ds: Dataset) -> bool:
    meta = getattr(ds, "file_meta", None)
    return meta is not None and meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY


_UNDEFINED_LENGTH = 0xFFFFFFFF


def check_complete(ds: Dataset) -> None:
    """Raise InvalidDicomError when a top-level value is shorter than its declared length,
    when a text value holds binary bytes (a damaged length took in the elements after it), or
    when a deferred element cannot even be read (an unknown VR code, say)."""
    try:
        elements = elements_of(ds)
    except Exception as exc:  # pydicom converting a damaged raw element: bad input
        raise InvalidDicomError(f"unreadable element ({safe_reason(exc)})") from exc
    for tag, elem in elements:
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
            continue
        value = elem.value
        if not isinstance(value, bytes):
            continue
        if len(value) < elem.length:
            raise InvalidDicomError(
                f"truncated file: element {_tag_text(tag)} has {len(value)} of {elem.length} bytes"
            )
        if _swallowed(tag, elem.VR, value):
            raise InvalidDicomError(
                f"damaged length: text element {_tag_text(tag)} holds binary bytes"
            )


#: VRs whose values are character strings (PS3.5 6.2): a NUL inside one is never text
_TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
     "UR", "UT"}
)  # fmt: skip


def _swallowed(tag: BaseTag, vr: str | None, value: bytes) -> bool:
    """Whether a text value holds a NUL before its (NUL or space) padding: what a damaged
    length field does when it takes the following elements into this one's value.  Kept
    text elements (Manufacturer, say) would otherwise carry those elements' raw bytes, PHI
    included, past de-identification and a verify that never saw them as elements."""
    return (vr or _dictionary_vr(tag)) in _TEXT_VRS and b"\0" in value.rstrip(b"\0 ")


def _dictionary_vr(tag: BaseTag) -> str:
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return ""


def _tag_text(tag: BaseTag) -> str:
    return f"({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X})"
