"""File-level de-identification: read tolerantly, de-identify, verify, write atomically.

A file either ends as a complete, verified output in DST or as a report entry that says why not;
nothing partial is ever left in DST (the output is written to a temporary file in the same folder
and moved into place with ``os.replace``), and an instance whose verify pass finds PHI is held.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.uid import (
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from dxai.actors.deid.encode import encode
from dxai.actors.deid.engine import Deidentifier, DeidResult
from dxai.actors.deid.reid import ReidentificationStore
from dxai.actors.deid.values import elements_of
from dxai.configs.errors import InvalidDicomError

MEDIA_DIRECTORY = "1.2.840.10008.1.3.10"
_IN_MEMORY_MAX = 256 * 1024 * 1024  # larger files are parsed from disk (less peak memory)
_QUOTED = re.compile(r"(['\"]).*?\1")
_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)


def safe_reason(exc: BaseException) -> str:
    """An error description without quoted values (which could carry PHI)."""
    text = _QUOTED.sub("<value>", str(exc)).replace("\n", " ")
    return f"{type(exc).__name__}: {text[:160]}"


@dataclass
class FileReport:
    """The outcome for one input file (JSON-ready through :meth:`as_dict`; no PHI)."""

    src: str
    dst: str | None = None
    status: str = "failed"  # ok, held, failed, skipped
    actions: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dictionary."""
        return asdict(self)


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


def _source(path: Path) -> Path | io.BytesIO:
    """Small files are read in one call and parsed from memory (faster than many small reads)."""
    if path.stat().st_size > _IN_MEMORY_MAX:
        return path
    return io.BytesIO(path.read_bytes())


def read_dicom(path: Path) -> FileDataset:
    """Read a DICOM file tolerantly (missing preamble allowed); raise InvalidDicomError if not."""
    try:
        source = _source(path)
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
    except (OSError, EOFError) as exc:
        raise InvalidDicomError(f"unreadable DICOM file ({safe_reason(exc)})") from exc
    _ensure_meta(ds)
    return ds


_UNDEFINED_LENGTH = 0xFFFFFFFF


def check_complete(ds: Dataset) -> None:
    """Raise InvalidDicomError when a top-level value is shorter than its declared length."""
    for tag, elem in elements_of(ds):
        if not isinstance(elem, RawDataElement) or elem.length == _UNDEFINED_LENGTH:
            continue
        if isinstance(elem.value, bytes) and len(elem.value) < elem.length:
            raise InvalidDicomError(
                f"truncated file: element ({int(tag) >> 16:04X},{int(tag) & 0xFFFF:04X}) has "
                f"{len(elem.value)} of {elem.length} bytes"
            )


def _create_temp(dst: Path) -> tuple[int, Path]:
    """A new, empty temporary file next to ``dst`` (created exclusively) and its descriptor.

    The name is predictable (``dst``'s name, the process and the thread), which makes one
    ``os.open`` with ``O_CREAT | O_EXCL`` enough; should that fail for any other reason than a
    missing folder (a stale file of that name left by a killed process, a name too long), a
    random name from ``tempfile.mkstemp`` is used instead.  Mode 0600, as ``mkstemp`` creates.
    """
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}-{threading.get_ident()}.dxai-part")
    try:
        return os.open(tmp, _TEMP_FLAGS, 0o600), tmp
    except FileNotFoundError:
        raise
    except OSError:
        fd, name = tempfile.mkstemp(prefix=".dxai-", suffix=".part", dir=dst.parent)
        return fd, Path(name)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(ds: Dataset, dst: Path) -> None:
    """Write ``ds`` to ``dst`` through a temporary file in the same folder.

    The file is encoded in memory first (see :func:`~dxai.actors.deid.encode.encode`; nothing
    touches the disk if encoding fails), written in one go through the descriptor that created
    the temporary file, and moved into place with ``os.replace``, which is atomic within one
    folder; on any failure the temporary file is removed, so ``dst`` is either the complete new
    file or untouched.
    """
    data = encode(ds)
    try:
        fd, tmp = _create_temp(dst)
    except FileNotFoundError:  # the folder is created only when it is missing
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = _create_temp(dst)
    try:
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        tmp.replace(dst)  # atomic within one folder (os.replace)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _fill(report: FileReport, result: DeidResult) -> None:
    report.actions = dict(sorted(result.actions.items()))
    report.defaults = result.defaults
    report.errors.extend(result.warnings)
    report.sop_instance_uid = str(result.dataset.get("SOPInstanceUID", "")) or None
    report.study_instance_uid = str(result.dataset.get("StudyInstanceUID", "")) or None


def deidentify_file(
    src: Path,
    dst: Path,
    deidentifier: Deidentifier,
    *,
    label: str | None = None,
    reid_store: ReidentificationStore | None = None,
) -> FileReport:
    """De-identify ``src`` into ``dst``; never raises for bad input, never leaves partial files."""
    start = time.perf_counter()
    report = FileReport(src=label or src.name)
    stage = "read"
    try:
        ds = read_dicom(src)
        check_complete(ds)
        if ds.file_meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY:
            report.status = "skipped"
            report.errors.append(
                "media directory (DICOMDIR) is not an instance: rebuild it from the outputs"
            )
            return report
        stage = "deidentify"
        result = deidentifier.deidentify(ds, in_place=True)
        _fill(report, result)
        stage = "verify"
        check = deidentifier.verify(
            result.dataset, result.phi_values, original_uids=result.original_uids
        )
        report.verify = {
            "passed": check.passed,
            "elements_scanned": check.elements_scanned,
            "findings": [f.as_dict() for f in check.findings],
        }
        if not check.passed:
            report.status = "held"
            report.errors.append(f"verify found {len(check.findings)} PHI value(s); not written")
        else:
            stage = "write"
            write_atomic(result.dataset, dst)
            report.status, report.dst = "ok", str(dst)
            if reid_store is not None:
                reid_store.record(result)
    except InvalidDicomError as exc:
        report.errors.append(f"{stage}: {exc}")
    except Exception as exc:  # noqa: BLE001 - the file boundary reports every failure
        report.errors.append(f"{stage}: {safe_reason(exc)}")
    report.duration_s = round(time.perf_counter() - start, 6)
    return report
