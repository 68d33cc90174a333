"""PID, ORC and OBR of the inbound ORU^R01, from the study's DICOM header.

PID-3 ``id^^^issuer^MR``, PID-5 (XPN) ``family^given^middle^suffix^prefix`` from the DICOM
Person Name, PID-7 the birth date when it is a valid DA, PID-8 ``M``/``F``/``O`` (else ``U``).
Orders: placer / filler order numbers from the DICOM request attributes, falling back to the
Accession Number; the Accession Number also in OBR-18 and the Requested Procedure ID in OBR-19.
"""

from __future__ import annotations

import re
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.valuerep import PersonName

from dxai.actors.inbound.oru_er7 import field, segment

_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2,6}")
_SEX = {"M": "M", "F": "F", "O": "O"}
#: OBR-4 when the header names no procedure code.
DEFAULT_SERVICE = ("DXAI", "AI image analysis", "DXAI")


def _first(value: Any) -> Any:
    """A multi-valued element's first value (None when it has none)."""
    if isinstance(value, MultiValue):
        return value[0] if len(value) else None
    return value


def _text(ds: Dataset, keyword: str) -> str:
    value = _first(ds.get(keyword))
    return "" if value is None else str(value).strip()


def _name(ds: Dataset) -> Any:
    raw = _first(ds.get("PatientName"))
    if raw is None or str(raw) == "":
        return field()
    pn = raw if isinstance(raw, PersonName) else PersonName(str(raw))
    parts = (pn.family_name, pn.given_name, pn.middle_name, pn.name_suffix, pn.name_prefix)
    return field(*(p.strip() for p in parts))


def patient_segment(ds: Dataset) -> Any:
    """PID: identifier with issuer, name, birth date, sex."""
    birth = _text(ds, "PatientBirthDate")
    issuer = _text(ds, "IssuerOfPatientID")
    return segment(
        "PID",
        field("1"),
        field(),
        field(_text(ds, "PatientID"), "", "", issuer, "MR"),
        field(),
        _name(ds),
        field(),
        field(birth if _DATE.match(birth) else ""),
        field(_SEX.get(_text(ds, "PatientSex").upper(), "U")),
    )


def _service(ds: Dataset) -> Any:
    for keyword in ("ProcedureCodeSequence", "RequestedProcedureCodeSequence"):
        items = ds.get(keyword) or []
        if items and items[0].get("CodeValue"):
            item = items[0]
            return field(
                str(item.CodeValue),
                _text(item, "CodeMeaning"),
                _text(item, "CodingSchemeDesignator"),
            )
    description = _text(ds, "StudyDescription")
    return field("", description) if description else field(*DEFAULT_SERVICE)


def _observed(ds: Dataset) -> str:
    date = _text(ds, "StudyDate")
    if not _DATE.match(date):
        return ""
    time = _TIME.match(_text(ds, "StudyTime"))
    return date + (time.group(0) if time else "")


def order_fields(ds: Dataset, priority_code: str, now_ts: str) -> tuple[list[Any], list[Any]]:
    """The fields (from field 1 on) of ORC and OBR; ``priority_code``: HL7 table 0027."""
    accession = _text(ds, "AccessionNumber")
    placer = _text(ds, "PlacerOrderNumberImagingServiceRequest") or accession
    filler = _text(ds, "FillerOrderNumberImagingServiceRequest") or accession
    timing = field("", "", "", "", "", priority_code)
    orc = [field("RE"), field(placer), field(filler), field(), field("CM"), field()]
    orc += [timing, field(), field(now_ts)]
    obr = [field("1"), field(placer), field(filler), _service(ds), field(priority_code)]
    obr += [field(), field(_observed(ds))] + [field() for _ in range(10)]
    obr += [field(accession), field(_text(ds, "RequestedProcedureID")), field(), field()]
    obr += [field(now_ts), field(), field("RAD"), field("F"), field(), timing]
    return orc, obr
