"""HL7 v2 messages -> job triggers: parse, pick the study, build the ACK/NAK (blocking, small)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

import hl7

AckCode = Literal["AA", "AE", "AR"]
ORDER_TYPES = frozenset({("ORM", "O01"), ("OMI", "O23")})
_JOB_CHARS = re.compile(r"[^A-Za-z0-9._:/-]")
_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


@dataclass(frozen=True)
class Hl7Outcome:
    """What to answer and, for a trigger, the study and the job id to submit."""

    ack_code: AckCode
    ack: str
    study_uid: str | None = None
    job_id: str | None = None
    text: str = ""


def _field(message: Any, segment: str, index: int) -> str:
    try:
        value = message.segment(segment)[index]
    except (KeyError, IndexError):
        return ""
    separators = str(message.separators)
    component = separators[3] if len(separators) > 3 else "^"
    return str(value).split(component, 1)[0]


def study_uid_of(message: Any) -> str | None:
    """The Study Instance UID of an order: ZDS-1 (component 1), else IPC-3 (OMI)."""
    for segment, index in (("ZDS", 1), ("IPC", 3)):
        value = _field(message, segment, index).strip()
        if value and len(value) <= 64 and _UID.match(value):
            return value
    return None


def build_ack(message: Any, code: AckCode, text: str = "") -> str:
    """The ACK for ``message`` (MSA-1 ``code``, MSA-2 its control id, MSA-3 ``text``)."""
    ack = str(message.create_ack(code, application="DXAI", facility="DXAI")).rstrip("\r")
    return f"{ack}|{text}" if text else ack


def bare_nak(text: str) -> str:
    """A reject for input that could not be parsed at all (no control id to echo)."""
    return f"MSH|^~\\&|DXAI|DXAI|||||ACK|DXAI-NAK|P|2.5\rMSA|AR||{text}"


def interpret(raw: str) -> Hl7Outcome:
    """Classify one message: order with study -> trigger, ADT -> acknowledged, else NAK."""
    text = raw.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not text.startswith("MSH"):
        return Hl7Outcome("AR", bare_nak("not an HL7 v2 message"), text="not_hl7")
    try:
        message = hl7.parse(text)
        kind = str(message.segment("MSH")[9]).split("^")
        control_id = str(message.segment("MSH")[10])
    except (KeyError, IndexError, ValueError, hl7.ParseException):
        return Hl7Outcome("AR", bare_nak("unparseable message"), text="unparseable")
    msg_type, event = [*kind, "", ""][:2]
    if (msg_type, event) in ORDER_TYPES:
        study = study_uid_of(message)
        if study is None or not control_id:
            reason = "no study uid" if study is None else "no control id"
            return Hl7Outcome("AE", build_ack(message, "AE", reason), text="no_study")
        job_id = "hl7-" + _JOB_CHARS.sub("_", control_id)[:120]
        return Hl7Outcome("AA", build_ack(message, "AA"), study_uid=study, job_id=job_id)
    if msg_type == "ADT" and re.fullmatch(r"A0[0-9]", event):
        return Hl7Outcome("AA", build_ack(message, "AA"), text="adt")
    return Hl7Outcome("AR", build_ack(message, "AR", "unsupported message type"), text="type")
