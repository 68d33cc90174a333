"""The inbound results as an HL7 v2.5 ORU^R01 for the RIS (pure), and its ACK read back.

This is the clinical channel: PID carries the patient's identifier, name, birth date and sex
from the DICOM header.  Segments: MSH, PID, ORC, OBR, ZDS (Study Instance UID, as in IHE
scheduled workflow), then OBX: one CWE per finding (``code^message^DXAI``, abnormal flag from
the severity) plus an NM for a finding's measurement, one CWE for the triage priority
(HL7 table 0027), one CWE repeating the QC flags, one RP pointing at the SR (a WADO-RS path
``studies/<uid>/series/<uid>/instances/<uid>``) and the summary as TX lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import hl7
from pydicom.dataset import Dataset

from dxai.actors.inbound.findings import Finding, TaskReport
from dxai.actors.inbound.oru_er7 import field, message, msh_segment, repeated, segment
from dxai.actors.inbound.oru_patient import order_fields, patient_segment
from dxai.configs.errors import PermanentError
from dxai.configs.schema.clinical_out import Hl7OutConfig

__all__ = [
    "ABNORMAL_FLAGS",
    "CODING_SYSTEM",
    "PRIORITY_CODES",
    "AckResult",
    "InvalidAckError",
    "build_oru",
    "parse_ack",
]

#: Coding system of dxai's own codes in CWE fields.
CODING_SYSTEM = "DXAI"
#: Triage priority -> (HL7 table 0027 code, text).
PRIORITY_CODES = {"stat": ("S", "Stat"), "urgent": ("A", "ASAP"), "routine": ("R", "Routine")}
#: Finding severity -> OBX-8 abnormal flag (HL7 table 0078).
ABNORMAL_FLAGS = {"info": "N", "warning": "A", "blocking": "AA"}
_QC_PREFIX = "qc"
_SEVERITY_RANK = {"info": 0, "warning": 1, "blocking": 2}


class InvalidAckError(PermanentError):
    """A reply that is not an HL7 ACK with an MSA segment."""

    code = "hl7_invalid_ack"


@dataclass(frozen=True)
class AckResult:
    """An ACK's MSA: acknowledgment code (MSA-1), the acknowledged control id (MSA-2), text."""

    code: str
    control_id: str
    text: str = ""

    @property
    def accepted(self) -> bool:
        """AA or CA: the peer took the message."""
        return self.code in ("AA", "CA")

    @property
    def rejected(self) -> bool:
        """AR or CR: the peer refuses the message for good."""
        return self.code in ("AR", "CR")


def parse_ack(text: str) -> AckResult:
    """The MSA of the ACK ``text``; :class:`InvalidAckError` when it has none."""
    body = text.replace("\r\n", "\r").replace("\n", "\r").strip()
    try:
        msa = hl7.parse(body).segment("MSA")
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        raise InvalidAckError("reply is not an HL7 ACK with an MSA segment") from exc
    code = str(msa.extract_field(1, 1)).strip().upper()
    control_id = str(msa.extract_field(1, 2))
    return AckResult(code, control_id, str(msa.extract_field(1, 3)))


def _hl7_ts(now: datetime) -> str:
    return now.strftime("%Y%m%d%H%M%S%z")


@dataclass
class _Obx:
    """Numbers OBX segments (OBX-1) as they are appended."""

    segments: list[Any]

    def add(self, kind: str, ident: tuple[str, str], sub_id: str, value: Any, **extra: Any) -> None:
        """One OBX: value type, observation identifier, sub-id, value, units, abnormal flag."""
        fields = [
            field(str(len(self.segments) + 1)),
            field(kind),
            field(ident[0], ident[1], CODING_SYSTEM),
            field(sub_id),
            value,
            extra.get("units", field()),
            field(),
            field(extra.get("flag", "")),
            field(),
            field(),
            field("F"),
        ]
        self.segments.append(segment("OBX", *fields))


def _finding_obx(obx: _Obx, finding: Finding, sub_id: str) -> None:
    ident = (finding.task, f"{finding.task} finding")
    value = field(finding.code, finding.message, CODING_SYSTEM)
    obx.add("CWE", ident, sub_id, value, flag=ABNORMAL_FLAGS[finding.severity])
    if finding.value is not None and finding.unit is not None:
        units = field(finding.unit, finding.unit, "UCUM")
        obx.add("NM", ident, sub_id, field(f"{finding.value:g}"), units=units)


def _qc_obx(obx: _Obx, findings: Sequence[Finding]) -> None:
    qc = [f for f in findings if f.task == _QC_PREFIX or f.code.startswith(_QC_PREFIX + ".")]
    reps = [(f.code, f.message, CODING_SYSTEM) for f in qc] or [
        ("none", "No QC flags", CODING_SYSTEM)
    ]
    worst = max((_SEVERITY_RANK[f.severity] for f in qc), default=0)
    flag = next(k for k, v in _SEVERITY_RANK.items() if v == worst)
    obx.add("CWE", ("qc_flags", "QC flags"), "1", repeated(reps), flag=ABNORMAL_FLAGS[flag])


def _sr_obx(obx: _Obx, study: str | None, series: str | None, sop: str | None) -> None:
    if not (study and series and sop):
        return
    pointer = f"studies/{study}/series/{series}/instances/{sop}"
    value = field(pointer, "DICOM", "AP", "DICOM")
    obx.add("RP", ("sr", "DICOM SR"), "1", value)


def _observations(
    reports: Sequence[TaskReport], priority: str, sr: tuple[str | None, ...], summary: str
) -> list[Any]:
    obx = _Obx([])
    findings = [f for report in reports for f in report.findings]
    for number, finding in enumerate(findings, start=1):
        _finding_obx(obx, finding, str(number))
    code, text = PRIORITY_CODES[priority]
    obx.add("CWE", ("priority", "Triage priority"), "1", field(code, text, "HL70027"))
    _qc_obx(obx, findings)
    _sr_obx(obx, sr[0], sr[1], sr[2])
    for line in summary.splitlines() or [""]:
        obx.add("TX", ("summary", "Summary"), "1", field(line))
    return obx.segments


def _msh(config: Hl7OutConfig, control_id: str, now: datetime) -> Any:
    return msh_segment(
        field(config.sending_application),
        field(config.sending_facility),
        field(config.receiving_application),
        field(config.receiving_facility),
        field(_hl7_ts(now)),
        field(),
        field("ORU", "R01", "ORU_R01"),
        field(control_id),
        field("P"),
        field("2.5"),
        *(field() for _ in range(5)),
        field("UNICODE UTF-8"),
    )


def build_oru(
    header: Dataset,
    *,
    priority: str,
    reports: Sequence[TaskReport],
    sr_study_uid: str | None,
    sr_series_uid: str | None,
    sr_sop_uid: str | None,
    summary: str,
    config: Hl7OutConfig,
    control_id: str,
    now: datetime,
) -> str:
    """The ORU^R01 (ER7, segments ended by ``\\r``) of the inbound ``reports`` on the study
    whose first header is ``header``.  ``priority``: ``stat``, ``urgent`` or ``routine``
    (``ValueError`` otherwise); the RP OBX is written only when all three SR UIDs are given."""
    if priority not in PRIORITY_CODES:
        raise ValueError(f"unknown triage priority; expected one of {sorted(PRIORITY_CODES)}")
    orc, obr = order_fields(header, PRIORITY_CODES[priority][0], _hl7_ts(now))
    segments = [
        _msh(config, control_id, now),
        patient_segment(header),
        segment("ORC", *orc),
        segment("OBR", *obr),
        segment(
            "ZDS", field(str(header.get("StudyInstanceUID", "")), "DXAI", "Application", "DICOM")
        ),
    ]
    sr = (sr_study_uid, sr_series_uid, sr_sop_uid)
    segments += _observations(reports, priority, sr, summary)
    return message(segments)
