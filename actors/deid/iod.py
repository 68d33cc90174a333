"""Resolve the combined action codes (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) by IOD.

PS3.15 says "X unless Z or D is needed to keep the IOD valid": the choice depends on whether the
attribute is Type 1, 2 or 3 in the IOD of the instance.  This module keeps a small table of the
attributes with combined codes that are Type 1 or Type 2 in common IODs; everything else is
treated as Type 3 (removed).  At nesting depth > 0 the top-level IOD table does not apply and the
attribute is treated as Type 3, except ``X/Z/U*`` which always keeps the sequence and remaps its
UIDs (``U*``), because references between the de-identified instances stay valid that way.

Choices (documented in the report of the ``deid`` issue):

- Type 1 -> ``D`` (dummy, pseudonym or shifted date), Type 2 -> ``Z`` (empty), Type 3 -> ``X``.
- ``X/D`` on a Type 2 attribute -> ``D`` (``Z`` is not allowed by that code).
- ``Z/D`` on a Type 3 attribute -> ``Z`` (``X`` is not allowed by that code).
"""

from __future__ import annotations

_SR = "1.2.840.10008.5.1.4.1.1.88."
_ENHANCED = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.2.1",  # Enhanced CT
        "1.2.840.10008.5.1.4.1.1.2.2",  # Legacy Converted Enhanced CT
        "1.2.840.10008.5.1.4.1.1.4.1",  # Enhanced MR
        "1.2.840.10008.5.1.4.1.1.4.3",  # Enhanced MR Color
        "1.2.840.10008.5.1.4.1.1.4.4",  # Legacy Converted Enhanced MR
        "1.2.840.10008.5.1.4.1.1.12.1.1",  # Enhanced XA
        "1.2.840.10008.5.1.4.1.1.12.2.1",  # Enhanced XRF
        "1.2.840.10008.5.1.4.1.1.128.1",  # Legacy Converted Enhanced PET
        "1.2.840.10008.5.1.4.1.1.130",  # Enhanced PET
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
    }
)
_RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"
_RT_RECORDS = frozenset(
    {"1.2.840.10008.5.1.4.1.1.481.4", "1.2.840.10008.5.1.4.1.1.481.6"}  # beams/brachy record
)
_PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11."

# Type 1/2 attributes (by keyword) among the rows with combined codes, per IOD family.
_COMMON = {
    "ContentDate": 2,  # General Image, Type 2C
    "ContentTime": 2,
    "PatientID": 2,
    "ContrastBolusAgent": 2,
}
_FAMILY_TYPES: dict[str, dict[str, int]] = {
    "sr": {"ContentDate": 1, "ContentTime": 1, "AcquisitionContextSequence": 2},
    "enhanced": {
        "ContentDate": 1,
        "ContentTime": 1,
        "AcquisitionDateTime": 1,
        "DeviceSerialNumber": 1,
        "AcquisitionContextSequence": 2,
    },
    "rtplan": {"RTPlanDate": 2, "RTPlanTime": 2, "TreatmentMachineName": 2},
    "rtrecord": {"TreatmentDate": 2, "TreatmentTime": 2, "TreatmentMachineName": 2},
    "pr": {"ContentCreatorName": 2, "ContentDate": 1, "ContentTime": 1},
}


def iod_family(sop_class_uid: str) -> str:
    """A coarse IOD family name for ``sop_class_uid`` (``"general"`` when not special)."""
    if sop_class_uid.startswith(_SR):
        return "sr"
    if sop_class_uid in _ENHANCED:
        return "enhanced"
    if sop_class_uid == _RT_PLAN:
        return "rtplan"
    if sop_class_uid in _RT_RECORDS:
        return "rtrecord"
    if sop_class_uid.startswith(_PRESENTATION_STATE):
        return "pr"
    return "general"


def attribute_type(family: str, keyword: str, depth: int) -> int:
    """The DICOM attribute Type (1, 2 or 3) used to resolve combined codes."""
    if depth > 0:
        return 3
    family_types = _FAMILY_TYPES.get(family, {})
    if keyword in family_types:
        return family_types[keyword]
    return _COMMON.get(keyword, 3)


def resolve_action(code: str, family: str, keyword: str, depth: int) -> str:
    """Turn a combined code into one of ``X``, ``Z``, ``D`` or ``U``; plain codes pass through."""
    if "/" not in code:
        return code
    if code == "X/Z/U*":
        return "U"
    kind = attribute_type(family, keyword, depth)
    if code == "X/Z":
        return "Z" if kind <= 2 else "X"
    if code == "X/D":
        return "D" if kind <= 2 else "X"
    if code == "Z/D":
        return "D" if kind == 1 else "Z"
    if code == "X/Z/D":
        return {1: "D", 2: "Z"}.get(kind, "X")
    raise ValueError(f"unknown action code {code!r}")
