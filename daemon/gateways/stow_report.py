"""The STOW-RS store report: which instances the destination says it did not store.

An archive answers in DICOM JSON when asked (``Accept: application/dicom+json``) but some answer
in the Native DICOM Model XML (PS3.19) whatever they are asked; both are read.  A failure a
report lists counts whatever the status.  HTTP 200 without a readable report says every instance
was stored.  HTTP 202 says some were not: a report that cannot be read then fails the request
(which ones landed is unknown, and the job must not conclude that all of them did).  A failed
instance the report does not name counts as ``?``.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET  # expat >= 2.4 bounds entity expansion (billion laughs)
from typing import Any

from dxai.configs.errors import PermanentError

FAILED_SEQ = "00081198"  # FailedSOPSequence
REFERENCED_SEQ = "00081199"  # ReferencedSOPSequence: the instances the report says it stored
REF_SOP_UID = "00081155"


def element(data: dict[str, Any], tag: str) -> list[Any] | None:
    """The ``Value`` list of ``tag`` in a DICOM JSON object (None when absent or malformed)."""
    found = data.get(tag)
    values = found.get("Value") if isinstance(found, dict) else None
    return values if isinstance(values, list) else None


def failed_uids(body: bytes, status: int) -> tuple[str, ...]:
    """The SOP Instance UIDs the report ``body`` of an HTTP ``status`` answer lists as failed."""
    report = _json_report(body) if not body.lstrip().startswith(b"<") else _xml_report(body)
    if report is None:
        if status == 202:
            raise PermanentError("stow-rs: HTTP 202 with a report that cannot be read")
        return ()
    failed, referenced = report
    if status == 202 and not failed and referenced is None:
        raise PermanentError("stow-rs: HTTP 202 without a failed or a referenced instance list")
    return tuple(uid or "?" for uid in failed or [])


Report = tuple[list[str] | None, list[str] | None]  # failed, referenced (None: absent)


def _json_report(body: bytes) -> Report | None:
    try:
        data = json.loads(body) if body.strip() else {}
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return _uids(element(data, FAILED_SEQ)), _uids(element(data, REFERENCED_SEQ))


def _uids(items: list[Any] | None) -> list[str] | None:
    if items is None:
        return None
    out = []
    for item in items:
        values = element(item, REF_SOP_UID) if isinstance(item, dict) else None
        first = values[0] if values else None
        out.append(first if isinstance(first, str) else "")
    return out


def _xml_report(body: bytes) -> Report | None:
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    found: dict[str, list[str]] = {}
    for attribute in root:
        tag = attribute.get("tag", "").upper()
        if _local(attribute.tag) == "DicomAttribute" and tag in (FAILED_SEQ, REFERENCED_SEQ):
            found[tag] = [_xml_uid(item) for item in attribute if _local(item.tag) == "Item"]
    return found.get(FAILED_SEQ), found.get(REFERENCED_SEQ)


def _xml_uid(item: ET.Element) -> str:
    """The Referenced SOP Instance UID of one ``Item`` ('' when it has none)."""
    for attribute in item:
        if attribute.get("tag", "").upper() == REF_SOP_UID:
            for value in attribute:
                if _local(value.tag) == "Value" and value.text:
                    return value.text.strip()
    return ""


def _local(name: str) -> str:
    """An XML element name without its namespace (``{uri}Item`` -> ``Item``)."""
    return name.rsplit("}", 1)[-1]
