"""The facts a policy rule is matched on, taken from a study event and the study's header.

Nothing here holds a name: a referring physician is kept as the SHA-256 of its normalised form
(:func:`dxai.configs.schema.policy.physician_digest`), and the patient identifier a consent is
looked up by lives only in :class:`HeaderFacts` (never logged, never in a message or a repr).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import hl7

from dxai.actors.inflate import dcmread_bounded
from dxai.configs.schema.policy import physician_digest
from dxai.daemon.events import StudyEvent

#: where an HL7 order names the referring (or ordering) physician, in order of preference (XCN)
_HL7_PHYSICIAN = (("PV1", 8), ("ORC", 12), ("OBR", 16))
_HEADER_TAGS = ["ReferringPhysicianName", "PatientID", "IssuerOfPatientID"]


@dataclass(frozen=True)
class Facts:
    """What rules are matched on; None: not known (such a condition does not hold)."""

    workflow: str | None = "outbound"
    destination: str | None = None
    source: str | None = None
    priority: str | None = None
    referring_physician: str | None = None  # sha256:<hex> of the normalised name
    modality: str | None = None
    sop_class: str | None = None

    def with_instance(self, modality: str, sop_class: str) -> Facts:
        """These facts for one instance (its blank header values stay unknown)."""
        return dataclasses.replace(
            self, modality=modality.upper() or self.modality, sop_class=sop_class or None
        )


@dataclass(frozen=True)
class HeaderFacts:
    """What the study's first instance says that the policy needs (held in memory only)."""

    referring_physician: str | None = None  # sha256:<hex>
    patient_id: str = field(default="", repr=False)
    issuer: str = field(default="", repr=False)


def facts_from_event(event: StudyEvent, source: str | None) -> Facts:
    """The event's facts: destination, priority, the resolved ``source`` name, and from its HL7
    order (when it carries one) the referring physician and the modality (OBR-24)."""
    message = _parse_hl7(event.hl7)
    physician = _hl7_physician(message) if message is not None else None
    modality = _hl7_field(message, "OBR", 24, 1).upper() if message is not None else ""
    return Facts(
        workflow="outbound",
        destination=event.destination,
        source=source,
        priority=event.priority,
        referring_physician=physician_digest(physician) if physician else None,
        modality=modality or None,
    )


def _parse_hl7(text: str | None) -> Any:
    if not text:
        return None
    raw = text.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not raw.startswith("MSH"):
        return None
    try:
        return hl7.parse(raw)
    except (KeyError, IndexError, ValueError, hl7.ParseException):
        return None


def _hl7_field(message: Any, segment: str, index: int, component: int) -> str:
    """Component ``component`` (1-based) of ``segment``-``index``; empty when absent."""
    try:
        value = str(message.segment(segment)[index])
    except (KeyError, IndexError):
        return ""
    separators = str(message.separators)
    mark = separators[3] if len(separators) > 3 else "^"
    parts = value.split(mark)
    return parts[component - 1].strip() if len(parts) >= component else ""


def _hl7_physician(message: Any) -> str | None:
    """The first physician an order names, as a DICOM PN (family^given^middle of an XCN)."""
    for segment, index in _HL7_PHYSICIAN:
        family = _hl7_field(message, segment, index, 2)
        if family:
            given = _hl7_field(message, segment, index, 3)
            middle = _hl7_field(message, segment, index, 4)
            return "^".join((family, given, middle))
    return None


def read_header_facts(raw: bytes) -> HeaderFacts:
    """The referring physician (hashed) and patient identifier of one instance (blocking).

    An unreadable header gives empty facts (the instance itself fails in the pipeline).
    """
    try:  # the values too: pydicom converts them lazily, a damaged one fails when read
        head = dcmread_bounded(raw, stop_before_pixels=True, force=True, specific_tags=_HEADER_TAGS)
        name = str(head.get("ReferringPhysicianName", "") or "").strip()
        return HeaderFacts(
            referring_physician=physician_digest(name) if name.strip("^ ") else None,
            patient_id=str(head.get("PatientID", "") or "").strip(),
            issuer=str(head.get("IssuerOfPatientID", "") or "").strip(),
        )
    except Exception:  # noqa: BLE001 - unreadable input: no facts, the pipeline says why
        return HeaderFacts()
