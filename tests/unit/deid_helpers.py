"""Shared builders for the de-identification unit tests (small hand-built datasets)."""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from dxai.actors.deid import Deidentifier
from dxai.configs.schema.deid import DeidConfig, DeidProfile

KEY = bytes(range(32))
STUDY_UID = "1.2.826.0.1.3680043.99.1"
SERIES_UID = "1.2.826.0.1.3680043.99.1.2"
SOP_UID = "1.2.826.0.1.3680043.99.1.2.3"
REF_UID = "1.2.826.0.1.3680043.99.1.2.4"


def deidentifier(*options: str, keep_tags: tuple[str, ...] = ()) -> Deidentifier:
    """A Deidentifier for the Basic Profile plus ``options``."""
    profile = DeidProfile(options=tuple(options), keep_tags=keep_tags)  # type: ignore[arg-type]
    return Deidentifier(profile, KEY, profile_name="test")


def named(name: str) -> Deidentifier:
    """A Deidentifier for one of the configured named profiles."""
    return Deidentifier(DeidConfig().profiles[name], KEY, profile_name=name)


def make_ds(sop_class: str = CTImageStorage) -> Dataset:
    """A small CT-like dataset full of fake PHI."""
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = SOP_UID
    ds.StudyInstanceUID = STUDY_UID
    ds.SeriesInstanceUID = SERIES_UID
    ds.Modality = "CT"
    ds.PatientName = "DOE^JOHNATHAN"
    ds.PatientID = "PID778899"
    ds.PatientBirthDate = "19700315"
    ds.PatientSex = "M"
    ds.PatientAge = "054Y"
    ds.PatientAddress = "12 Elm Street Springfield"
    ds.OtherPatientIDs = "MRN55443322"
    ds.AccessionNumber = "ACC123456"
    ds.ReferringPhysicianName = "HOUSE^GREGORY"
    ds.StudyDate = "20240102"
    ds.StudyTime = "101500"
    ds.SeriesDate = "20240102"
    ds.AcquisitionDate = "20240105"
    ds.ContentDate = "20240102"
    ds.StudyDescription = "CT chest for Johnathan Doe"
    ds.InstitutionName = "Springfield General"
    ds.StationName = "CTSTATION7"
    ds.DeviceSerialNumber = "SN998877"
    ds.OperatorsName = "SMITHERS^WAYLON"
    ds.Manufacturer = "ACME"
    ds.BodyPartExamined = "CHEST"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = REF_UID
    ds.ReferencedImageSequence = Sequence([ref])
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = SOP_UID
    return ds


def write(ds: Dataset, path: Path) -> Path:
    """Save ``ds`` as a Part 10 file."""
    ds.save_as(path, enforce_file_format=True)
    return path
