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
        "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation
        "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map
        "1.2.840.10008.5.1.4.1.1.77.1.6",  # VL Whole Slide Microscopy
    }
)
_RT = "1.2.840.10008.5.1.4.1.1.481."
_WAVEFORM = "1.2.840.10008.5.1.4.1.1.9."
_DICOMDIR = "1.2.840.10008.1.3.10"
_PRESENTATION_STATE = "1.2.840.10008.5.1.4.1.1.11."

# Type 1/2 attributes (by keyword) among the rows with combined codes, per IOD family.
_COMMON = {
    "ContentDate": 2,  # General Image, Type 2C
    "ContentTime": 2,
    "PatientID": 2,
    "ContrastBolusAgent": 2,
    # Acquisition Context Module: Type 2 in DX, MG, IO, enhanced and waveform IODs; an empty
    # sequence is harmless where the module is not used.
    "AcquisitionContextSequence": 2,
}
_FAMILY_TYPES: dict[str, dict[str, int]] = {
    "sr": {
        "ContentDate": 1,
        "ContentTime": 1,
        "ReferencedPerformedProcedureStepSequence": 2,  # SR Document Series
    },
    "enhanced": {
        "ContentDate": 1,
        "ContentTime": 1,
        "AcquisitionDateTime": 1,
        "DeviceSerialNumber": 1,
        "AcquisitionContextSequence": 2,
    },
    "rt": {
        "OperatorsName": 2,  # RT Series
        "RTPlanDate": 2,
        "RTPlanTime": 2,
        "TreatmentMachineName": 2,  # RT Beams, inside the Beam Sequence
        "TreatmentDate": 2,
        "TreatmentTime": 2,
    },
    "waveform": {
        "ContentDate": 1,
        "ContentTime": 1,
        "AcquisitionDateTime": 1,  # Waveform Identification
        "AcquisitionContextSequence": 2,
    },
    "dicomdir": {  # directory records (nested)
        "StudyDate": 1,
        "StudyTime": 1,
        "StudyID": 1,
        "StudyDescription": 2,
        "PatientName": 2,
    },
    "pr": {"ContentCreatorName": 2, "ContentDate": 1, "ContentTime": 1},
}


def iod_family(sop_class_uid: str) -> str:
    """A coarse IOD family name for ``sop_class_uid`` (``"general"`` when not special)."""
    if sop_class_uid.startswith(_SR):
        return "sr"
    if sop_class_uid in _ENHANCED:
        return "enhanced"
    if sop_class_uid.startswith(_RT):
        return "rt"
    if sop_class_uid.startswith(_WAVEFORM):
        return "waveform"
    if sop_class_uid == _DICOMDIR:
        return "dicomdir"
    if sop_class_uid.startswith(_PRESENTATION_STATE):
        return "pr"
    return "general"


def attribute_type(family: str, keyword: str, depth: int) -> int:
    """The DICOM attribute Type (1, 2 or 3) used to resolve action codes.

    The per-family table applies at every depth (its keywords are specific, e.g. the Treatment
    Machine Name inside the Beam Sequence); the common table only at the top level.
    """
    family_types = _FAMILY_TYPES.get(family, {})
    if keyword in family_types:
        return family_types[keyword]
    return _COMMON.get(keyword, 3) if depth == 0 else 3


def resolve_action(code: str, family: str, keyword: str, depth: int) -> str:
    """Turn a code into one of ``X``, ``Z``, ``D``, ``U``, ``K`` or ``C``.

    Plain ``X`` on an attribute known to be Type 2 (Type 1) becomes ``Z`` (``D``), and plain
    ``Z`` on a Type 1 attribute becomes ``D``: the value is gone either way, and the IOD stays
    valid.  Other plain codes pass through.
    """
    if code in ("X", "Z"):
        kind = attribute_type(family, keyword, depth)
        if kind == 1:
            return "D"
        return "Z" if kind == 2 else code
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
