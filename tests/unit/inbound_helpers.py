"""Shared builders for the inbound unit tests: real pydicom series and a :class:`StudyView`.

``make_ct_series`` builds an axial CT stack in memory; ``make_mr_series`` an MR one;
``study_view`` writes every dataset to bytes (the way a gateway would receive it) and wraps it
in an :class:`InstanceRef` whose header is read back with ``stop_before_pixels`` and whose
``load`` re-reads the whole bytes.  All data here is synthetic and carries no PHI.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable, Iterable
from collections.abc import Set as AbstractSet
from itertools import count

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    MRImageStorage,
)

from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.errors import InvalidDicomError

UID_PREFIX = "1.2.826.0.1.3680043.10.1137."
_SERIAL = count(1)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
CORONAL = (1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
SAGITTAL = (0.0, 1.0, 0.0, 0.0, 0.0, -1.0)


def new_uid() -> str:
    """A fresh UID under the test prefix."""
    return f"{UID_PREFIX}{uuid.uuid4().int % 10**24}"


def _base(sop_class: str, modality: str, study_uid: str, series_uid: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = new_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = modality
    ds.PatientName = "TEST^QC"
    ds.PatientID = "QC-TEST"
    ds.StudyDate = "20240101"
    ds.FrameOfReferenceUID = study_uid + ".1"
    return ds


def _pixels(ds: Dataset, rows: int, cols: int, seed: int) -> None:
    """Native 16-bit signed pixels: a noisy, non-constant image."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(-1000, 1500, size=(rows, cols), dtype=np.int16)
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 16, 15
    ds.PixelRepresentation = 1
    ds.PixelData = arr.tobytes()


def make_ct_series(
    n: int,
    thickness_mm: float,
    spacing_mm: float,
    missing: AbstractSet[int] = frozenset(),
    study_uid: str | None = None,
    series_uid: str | None = None,
    *,
    series_number: int = 2,
    kvp: float = 120.0,
    description: str = "HEAD NON CONTRAST",
    study_description: str = "CT HEAD WITHOUT CONTRAST",
    body_part: str = "HEAD",
    orientation: tuple[float, ...] = AXIAL,
    z0_mm: float = -120.0,
    pixel_spacing_mm: float = 0.5,
    rows: int = 32,
    cols: int = 32,
    contrast_agent: str | None = None,
) -> list[Dataset]:
    """An axial CT stack of ``n`` slices ``spacing_mm`` apart, minus the indices in ``missing``.

    Index ``i`` (0-based) has InstanceNumber ``i + 1`` and lies at ``z0_mm + i * spacing_mm``
    along the slice normal; a missing index leaves a gap both in positions and in numbers.
    """
    study_uid = study_uid or new_uid()
    series_uid = series_uid or new_uid()
    normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
    out: list[Dataset] = []
    for i in range(n):
        if i in missing:
            continue
        ds = _base(CTImageStorage, "CT", study_uid, series_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.SeriesNumber = series_number
        ds.InstanceNumber = i + 1
        ds.StudyDescription = study_description
        ds.SeriesDescription = description
        ds.BodyPartExamined = body_part
        ds.SliceThickness = f"{thickness_mm:.6f}"
        ds.KVP = f"{kvp:g}"
        pos = normal * (z0_mm + i * spacing_mm)
        ds.ImagePositionPatient = [f"{v + 0.0:.4f}" for v in pos]
        ds.ImageOrientationPatient = [f"{v:g}" for v in orientation]
        ds.PixelSpacing = [f"{pixel_spacing_mm:g}", f"{pixel_spacing_mm:g}"]
        ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
        if contrast_agent is not None:
            ds.ContrastBolusAgent = contrast_agent
            ds.ContrastBolusRoute = "IV"
        _pixels(ds, rows, cols, seed=next(_SERIAL))
        out.append(ds)
    return out


def make_scout(study_uid: str, series_uid: str | None = None, n: int = 2) -> list[Dataset]:
    """A CT localizer series: ``n`` scout images (one coronal, one sagittal, alternating)."""
    series_uid = series_uid or new_uid()
    out: list[Dataset] = []
    for i in range(n):
        ds = _base(CTImageStorage, "CT", study_uid, series_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.SeriesNumber = 1
        ds.InstanceNumber = i + 1
        ds.SeriesDescription = "Topogram 0.6 T20s"
        ds.StudyDescription = "CT HEAD WITHOUT CONTRAST"
        ds.SliceThickness = "0.6"
        ds.KVP = "120"
        orient = CORONAL if i % 2 == 0 else SAGITTAL
        ds.ImageOrientationPatient = [f"{v:g}" for v in orient]
        ds.ImagePositionPatient = ["-250", "0", "200"]
        ds.PixelSpacing = ["1.0", "0.7"]
        _pixels(ds, 32, 32, seed=next(_SERIAL))
        out.append(ds)
    return out


def make_mr_series(
    n: int,
    study_uid: str | None = None,
    *,
    spacing_mm: float = 5.5,
    thickness_mm: float = 5.0,
    orientation: tuple[float, ...] = SAGITTAL,
) -> list[Dataset]:
    """An MR stack (sagittal by default, 5 mm slices with a 0.5 mm gap); no KVP, no contrast."""
    study_uid = study_uid or new_uid()
    series_uid = new_uid()
    normal = np.cross(np.array(orientation[:3]), np.array(orientation[3:]))
    out: list[Dataset] = []
    for i in range(n):
        ds = _base(MRImageStorage, "MR", study_uid, series_uid)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
        ds.SeriesNumber = 3
        ds.InstanceNumber = i + 1
        ds.StudyDescription = "MRI BRAIN"
        ds.SeriesDescription = "T1 SAG"
        ds.SliceThickness = f"{thickness_mm:.6f}"
        ds.SpacingBetweenSlices = f"{spacing_mm:g}"
        ds.ImagePositionPatient = [f"{v + 0.0:.4f}" for v in normal * (-40.0 + i * spacing_mm)]
        ds.ImageOrientationPatient = [f"{v:g}" for v in orientation]
        ds.PixelSpacing = ["0.9375", "0.9375"]
        ds.MagneticFieldStrength = "1.5"
        _pixels(ds, 32, 32, seed=next(_SERIAL))
        ds.PixelRepresentation = 0
        ds.PixelData = np.abs(np.frombuffer(ds.PixelData, dtype=np.int16)).tobytes()
        out.append(ds)
    return out


def to_bytes(ds: Dataset) -> bytes:
    """``ds`` written as a DICOM Part 10 file."""
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _loader(data: bytes) -> Callable[[], Dataset]:
    def load() -> Dataset:
        try:
            return dcmread(io.BytesIO(data), force=True)
        except (PydicomInvalidDicomError, ValueError, EOFError, OSError) as exc:
            raise InvalidDicomError("instance could not be read") from exc

    return load


def _syntax_read(header: Dataset) -> str:
    """The syntax pydicom found when the file meta does not name one."""
    implicit, little = header.original_encoding
    if implicit:
        return str(ImplicitVRLittleEndian)
    return str(ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian)


def instance_ref(data: bytes) -> InstanceRef:
    """An :class:`InstanceRef` over the Part 10 bytes ``data``."""
    header = dcmread(io.BytesIO(data), stop_before_pixels=True, force=True)
    meta = getattr(header, "file_meta", None)
    found = meta.get("TransferSyntaxUID", "") if meta is not None else ""
    syntax = str(found or _syntax_read(header))
    return InstanceRef(
        header=header, load=_loader(data), size_bytes=len(data), transfer_syntax=syntax
    )


def study_view(datasets: Iterable[Dataset | bytes], study_uid: str | None = None) -> StudyView:
    """Group ``datasets`` (or Part 10 bytes) by SeriesInstanceUID, in first-seen order.

    Every dataset is written to bytes; its :class:`InstanceRef` has the header read back with
    ``stop_before_pixels`` and a ``load`` that re-reads the bytes (raising dxai's
    ``InvalidDicomError`` when they are not readable).
    """
    groups: dict[str, list[InstanceRef]] = {}
    for item in datasets:
        ref = instance_ref(item if isinstance(item, bytes) else to_bytes(item))
        groups.setdefault(str(ref.header.get("SeriesInstanceUID", "")), []).append(ref)
    series = tuple(SeriesView(uid, tuple(refs)) for uid, refs in groups.items())
    if study_uid is None:
        first = next((s.instances[0].header for s in series if s.instances), Dataset())
        study_uid = str(first.get("StudyInstanceUID", ""))
    return StudyView(study_uid=study_uid, series=series)
