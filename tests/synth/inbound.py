"""Synthetic studies for the inbound workflow's demo: a current study, its patient's priors
(stored under differently formatted names) and a decoy patient of a similar name.

``write_inbound_demo(folder, seed)`` writes ``folder/incoming/<study>/`` (the study that arrives:
a non-contrast head CT with one slice missing) and ``folder/archive/<study>/`` (two priors of
the same patient — ``Mueller^Hans`` and ``HANS MULLER`` with the day and month of the birth
date swapped — and a decoy ``MÜLLER^HANNA``); all names are fictitious.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

#: the UID root of the demo's UIDs (pydicom's: these are test objects)
_ROOT = "1.2.826.0.1.3680043.8.498."


@dataclass(frozen=True)
class DemoPatient:
    """A fictitious patient as one archive spells it."""

    name: str
    birth_date: str
    patient_id: str
    sex: str


@dataclass(frozen=True)
class InboundDemo:
    """What was written: the incoming study's folder and UIDs of every study."""

    incoming: Path
    archive: Path
    study_uid: str
    prior_uids: tuple[str, ...]
    decoy_uid: str
    patient: DemoPatient


def _slice(p: DemoPatient, uids: tuple[str, str, str], n: int, spec: dict[str, object]) -> Dataset:
    study, series, frame = uids
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, generate_uid(_ROOT)
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.PatientName, ds.PatientID, ds.IssuerOfPatientID = p.name, p.patient_id, "DEMO"
    ds.PatientBirthDate, ds.PatientSex = p.birth_date, p.sex
    ds.StudyDate = ds.SeriesDate = str(spec["date"])
    ds.StudyTime, ds.StudyID, ds.AccessionNumber = "101500", "1", f"DEMO{n:03d}"
    ds.ReferringPhysicianName = "Demo^Referrer"
    ds.Modality, ds.BodyPartExamined, ds.Manufacturer = "CT", "HEAD", "DXAI DEMO"
    ds.StudyDescription, ds.SeriesDescription = str(spec["description"]), "AXIAL NON CONTRAST"
    ds.SeriesNumber, ds.InstanceNumber, ds.KVP = 2, n, 120
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    thickness = float(str(spec["thickness"]))
    ds.ImagePositionPatient = [-64.0, -64.0, n * thickness]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness = [1.0, 1.0], thickness
    _pixels(ds, n)
    return ds


def _pixels(ds: Dataset, n: int) -> None:
    """A 128 x 128 head phantom: air, a skull ring, brain."""
    yy, xx = np.mgrid[-64:64, -64:64]
    radius = np.hypot(yy, xx)
    image = np.full((128, 128), 24, dtype=np.int32)  # air (HU -1000 with intercept -1024)
    image[radius < 56] = 1024 + 900  # bone
    image[radius < 50] = 1024 + 35 + (n % 5)  # brain
    ds.Rows = ds.Columns = 128
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = -1024, 1, "HU"
    ds.WindowCenter, ds.WindowWidth = 40, 80
    ds.PixelData = image.astype(np.uint16).tobytes()


def _write(folder: Path, p: DemoPatient, spec: dict[str, object], skip: int = 0) -> str:
    study = generate_uid(_ROOT)
    uids = (study, generate_uid(_ROOT), generate_uid(_ROOT))
    count = int(str(spec["slices"]))
    for n in range(1, count + 1):
        if n == skip:
            continue
        path = folder / study / f"{n:04d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        _slice(p, uids, n, spec).save_as(path, enforce_file_format=True)
    return study


def write_inbound_demo(folder: Path, seed: int = 7) -> InboundDemo:
    """Write the demo's studies under ``folder`` (see the module doc)."""
    rng = random.Random(seed)
    dob = f"19{rng.randint(40, 79)}0{rng.randint(1, 9)}1{rng.randint(0, 2)}"
    pid = f"DEMO{rng.randint(10000, 99999)}"
    current = DemoPatient("MÜLLER^HANS", dob, pid, "M")
    by_name = DemoPatient("Mueller^Hans", dob, pid, "M")
    swapped = DemoPatient("HANS MULLER", dob[:4] + dob[6:] + dob[4:6], "", "M")
    decoy = DemoPatient("MÜLLER^HANNA", "19850101", f"DEMO{rng.randint(10000, 99999)}", "F")
    head = {"description": "CT HEAD STROKE", "thickness": 5.0}
    incoming, archive = folder / "incoming", folder / "archive"
    study = _write(incoming, current, {**head, "date": "20261207", "slices": 24}, skip=12)
    priors = (
        _write(archive, by_name, {**head, "date": "20250310", "slices": 4}),
        _write(archive, swapped, {**head, "date": "20230921", "slices": 4}),
    )
    decoy_uid = _write(archive, decoy, {**head, "date": "20260101", "slices": 4})
    return InboundDemo(incoming, archive, study, priors, decoy_uid, current)
