"""Header modules shared by every IOD, with fake PHI planted where real systems put it.

Each ``add_*`` function appends every PHI string it plants to ``phi`` so that the ground truth
lists exactly what was written.
"""

from __future__ import annotations

import random

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

from dxai.synth.identities import FakeIdentity
from dxai.synth.plan import InstancePlan, SeriesPlan, StudyPlan

# Detached Study Management SOP Class (retired), which ReferencedStudySequence items still use.
DETACHED_STUDY_MANAGEMENT = "1.2.840.10008.3.1.2.3.1"
IMPLEMENTATION_VERSION = "DXAI_SYNTH_1"
_BODY_PART = {"CT": "CHEST", "MR": "HEAD", "US": "ABDOMEN", "DX": "CHEST"}


def _item(**values: object) -> Dataset:
    item = Dataset()
    for keyword, value in values.items():
        setattr(item, keyword, value)
    return item


def _person_tokens(pn: str) -> list[str]:
    """The PN value and its family/given components."""
    return [pn, *[part for part in pn.split("^")[:2] if part]]


def new_dataset(sop_class_uid: str, sop_uid: str, ident: FakeIdentity) -> Dataset:
    """An empty dataset with file meta and the SOP Common module's identifiers."""
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION
    ds.file_meta = meta
    if ident.charset is not None:
        ds.SpecificCharacterSet = ident.charset
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = sop_uid
    return ds


def add_patient(ds: Dataset, ident: FakeIdentity, rng: random.Random, phi: list[str]) -> None:
    """Patient and Patient Study modules, with other IDs, address, phone and history."""
    ds.PatientName = ident.dicom_name
    ds.PatientID = ident.mrn
    ds.IssuerOfPatientID = ident.institution
    ds.PatientBirthDate = ident.birth_date
    ds.PatientSex = ident.sex
    ds.PatientAddress = ident.address
    ds.PatientTelephoneNumbers = ident.phone
    ds.OtherPatientIDsSequence = [
        _item(
            PatientID=ident.other_mrn, IssuerOfPatientID="STATE_HEALTH_ID", TypeOfPatientID="TEXT"
        )
    ]
    ds.PatientAge = f"{rng.randint(20, 90):03d}Y"
    ds.PatientWeight = f"{rng.randint(45, 110)}"
    dob = ident.dob_formats()[rng.randrange(1, 4)]
    ds.AdditionalPatientHistory = (
        f"Pt {ident.given} {ident.family}, DOB {dob}, lives at {ident.address}. Call {ident.phone}."
    )
    ds.PatientComments = f"MRN {ident.mrn}; alt ID {ident.other_mrn}"
    phi += [ident.dicom_name, ident.family, ident.given, ident.mrn, ident.other_mrn]
    phi += [ident.birth_date, dob, ident.address, ident.phone]


def add_study(ds: Dataset, study: StudyPlan, rng: random.Random, phi: list[str]) -> None:
    """General Study module plus a ReferencedStudySequence to a prior study."""
    ident = study.identity
    ds.StudyInstanceUID = study.study_uid
    ds.StudyDate = study.date
    ds.StudyTime = study.time
    ds.ReferringPhysicianName = ident.referring
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession
    ds.StudyDescription = rng.choice(
        ["ROUTINE", f"f/u {ident.dicom_name}", f"follow-up for {ident.mrn}", "SCREENING"]
    )
    ds.ReferencedStudySequence = [
        _item(
            ReferencedSOPClassUID=DETACHED_STUDY_MANAGEMENT,
            ReferencedSOPInstanceUID=study.prior_study_uid,
        )
    ]
    phi += [*_person_tokens(ident.referring), study.study_id, study.accession, study.date]


def add_series(
    ds: Dataset, study: StudyPlan, series: SeriesPlan, modality: str, phi: list[str]
) -> None:
    """General Series module with the Request Attributes Sequence (nested identifiers)."""
    ident = study.identity
    ds.Modality = modality
    ds.SeriesInstanceUID = series.series_uid
    ds.SeriesNumber = series.number
    ds.BodyPartExamined = _BODY_PART.get(modality, "CHEST")  # unpaired: Laterality not needed
    ds.SeriesDate = study.date
    ds.SeriesTime = series.time
    ds.PerformingPhysicianName = ident.performing
    ds.OperatorsName = ident.operator
    ds.SeriesDescription = f"{modality} series {series.number} ({ident.mrn})"
    ds.ProtocolName = f"{modality} ROUTINE"
    ds.PerformedProcedureStepStartDate = study.date
    ds.PerformedProcedureStepStartTime = series.time
    ds.PerformedProcedureStepID = study.scheduled_step_id
    ds.RequestAttributesSequence = [
        _item(
            RequestedProcedureID=study.requested_procedure_id,
            ScheduledProcedureStepID=study.scheduled_step_id,
            AccessionNumber=study.accession,
            RequestedProcedureDescription=f"{modality} for {ident.family}",
        )
    ]
    phi += [*_person_tokens(ident.performing), *_person_tokens(ident.operator)]
    phi += [study.requested_procedure_id, study.scheduled_step_id]


def add_equipment(ds: Dataset, ident: FakeIdentity, manufacturer: str, phi: list[str]) -> None:
    """General Equipment module with the institution and station."""
    ds.Manufacturer = manufacturer
    ds.InstitutionName = ident.institution
    ds.InstitutionAddress = ident.institution_address
    ds.StationName = ident.station
    ds.InstitutionalDepartmentName = "RADIOLOGY"
    ds.ManufacturerModelName = "SYNTH-9000"
    ds.DeviceSerialNumber = "SN-0001"
    ds.SoftwareVersions = "dxai-synth 1"
    phi += [ident.institution, ident.institution_address, ident.station]


def add_image_common(
    ds: Dataset,
    study: StudyPlan,
    inst: InstancePlan,
    sop_class_uid: str,
    rng: random.Random,
    phi: list[str],
) -> None:
    """General Image / Acquisition content: numbers, dates, comments and image references."""
    ident = study.identity
    ds.InstanceNumber = inst.number
    ds.AcquisitionNumber = 1
    ds.ContentDate = study.date
    ds.ContentTime = study.time
    ds.AcquisitionDateTime = f"{study.date}{study.time}.{rng.randint(0, 999999):06d}"
    ds.InstanceCreationDate = study.date
    ds.InstanceCreationTime = study.time
    ds.ImageComments = rng.choice(
        [
            f"Reviewed with {ident.given} {ident.family} ({ident.mrn})",
            f"acc {study.accession}; pt {ident.dicom_name}",
            "No comments",
        ]
    )
    if inst.previous_sop_uid is not None:
        ds.ReferencedImageSequence = [
            _item(
                ReferencedSOPClassUID=sop_class_uid, ReferencedSOPInstanceUID=inst.previous_sop_uid
            )
        ]
