"""Mark a de-identified dataset: PatientIdentityRemoved, method text and CID 7050 codes."""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

METHOD_PREFIX = "dxai PS3.15 E.1"
BASIC_CODE = ("113100", "Basic Application Confidentiality Profile")
#: CID 7050 De-identification Method: option name -> (code value, code meaning).
OPTION_CODES: dict[str, tuple[str, str]] = {
    "clean_pixel_data": ("113101", "Clean Pixel Data Option"),
    "clean_recognizable_visual_features": ("113102", "Clean Recognizable Visual Features Option"),
    "clean_graphics": ("113103", "Clean Graphics Option"),
    "clean_structured_content": ("113104", "Clean Structured Content Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_longitudinal_full_dates": (
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "retain_longitudinal_modified_dates": (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "retain_uids": ("113110", "Retain UIDs Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "retain_institution_identity": ("113112", "Retain Institution Identity Option"),
}


def _code(value: str, meaning: str) -> Dataset:
    item = Dataset()
    item[0x00080100] = DataElement(0x00080100, "SH", value)  # CodeValue
    item[0x00080102] = DataElement(0x00080102, "SH", "DCM")  # CodingSchemeDesignator
    item[0x00080104] = DataElement(0x00080104, "LO", meaning)  # CodeMeaning
    return item


def method_codes(options: Iterable[str]) -> list[tuple[str, str]]:
    """The CID 7050 codes (value, meaning) for the Basic Profile plus ``options``, in order."""
    chosen = [BASIC_CODE]
    chosen.extend(OPTION_CODES[o] for o in sorted(set(options)) if o in OPTION_CODES)
    return chosen


def mark(ds: Dataset, profile_name: str, options: Iterable[str], date_mode: str) -> None:
    """Write the de-identification marking attributes into ``ds``."""
    opts = list(options)
    codes = Sequence([_code(v, m) for v, m in method_codes(opts)])
    method = f"{METHOD_PREFIX} {profile_name}"[:64]
    modified = {"full": "UNMODIFIED", "shift": "MODIFIED", "remove": "REMOVED"}[date_mode]
    for tag, vr, value in (
        (0x00120062, "CS", "YES"),  # PatientIdentityRemoved
        (0x00120063, "LO", method),  # DeidentificationMethod
        (0x00120064, "SQ", codes),  # DeidentificationMethodCodeSequence
        (0x00280303, "CS", modified),  # LongitudinalTemporalInformationModified
    ):
        ds[tag] = DataElement(tag, vr, value)
