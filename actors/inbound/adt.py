"""ADT^A04 (register a patient): who arrives, so that the priors of that patient can be fetched
before the new study does (pure parsing; the daemon searches and retrieves)."""

from __future__ import annotations

from typing import Any

import hl7

from dxai.actors.inbound.patient_match import Demographics

#: the ADT events that announce a patient at this site (A04 register an outpatient; A01 admit)
PREFETCH_EVENTS = frozenset({("ADT", "A04"), ("ADT", "A01")})


def _component(field: Any, index: int, separators: str) -> str:
    """Component ``index`` (0-based) of a field's first repetition; ``separators`` as
    python-hl7 gives them (segment, field, repetition, component, sub-component)."""
    repetition = separators[2] if len(separators) > 2 else "~"
    component = separators[3] if len(separators) > 3 else "^"
    first = str(field).split(repetition, 1)[0]
    parts = first.split(component)
    return parts[index].strip() if index < len(parts) else ""


def _pid(message: Any, index: int) -> Any:
    try:
        return message.segment("PID")[index]
    except (KeyError, IndexError):
        return ""


def demographics_of_adt(text: str) -> Demographics | None:
    """The patient of an ADT^A04 / A01 message (PID-3 ID and issuer, PID-5 name as DICOM PN,
    PID-7 birth date, PID-8 sex); None for another message or one without a patient."""
    raw = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not raw.startswith("MSH"):
        return None
    try:
        message = hl7.parse(raw)
        kind = str(message.segment("MSH")[9]).split("^")
        message.segment("PID")
    except (KeyError, IndexError, ValueError, hl7.ParseException):
        return None
    if tuple([*kind, "", ""][:2]) not in PREFETCH_EVENTS:
        return None
    seps = str(message.separators)
    name = "^".join(_component(_pid(message, 5), i, seps) for i in range(3)).rstrip("^")
    demographics = Demographics(
        name=name,
        birth_date=str(_pid(message, 7))[:8],
        sex=str(_pid(message, 8))[:1].upper(),
        patient_id=_component(_pid(message, 3), 0, seps),
        issuer=_component(_pid(message, 3), 3, seps),
    )
    return demographics if demographics.patient_id or demographics.name else None
