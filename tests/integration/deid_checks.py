"""Independent checks for the de-identification integration tests (no dxai code used here)."""

from __future__ import annotations

import re
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

# Attributes that identify the patient directly (in addition to every PN value).
IDENTIFYING = (
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "OtherPatientNames",
    "PatientMotherBirthName",
    "MedicalRecordLocator",
    "InstitutionAddress",
)
GENERIC = {"ANONYMOUS", "ANONYMIZED", "UNKNOWN", "NONE", "TEST", "PATIENT", "ANON"}
_BULK = (0x7FE00008, 0x7FE00009, 0x7FE00010)
_UID_KEYWORDS = (
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "FrameOfReferenceUID",
    "ReferencedSOPInstanceUID",
)
_NUMBERS = re.compile(r"\d+(\.\d+)*")


def _usable(token: str) -> bool:
    token = token.strip()
    if len(token) < 3 or token.upper() in GENERIC:
        return False
    return not (token.isdigit() and len(token) < 5)


def _vocabulary(ds: Dataset) -> str:
    """Coded vocabulary of the input (CS values, code meanings): not PHI by nature."""
    words = []
    for elem in ds.iterall():
        if elem.VR == "CS" or elem.keyword == "CodeMeaning":
            values = elem.value if elem.VM > 1 else [elem.value]
            words.extend(str(v) for v in values)
    return "\n".join(words)


def input_phi(ds: Dataset) -> set[str]:
    """PN components and identifying values of the input, collected here independently.

    Tokens that also occur in the input's coded vocabulary (e.g. a PN value "Perfusion" next to
    the image type PERFUSION) are left out: finding them in the output is not a leak.
    """
    found = _collect(ds)
    vocabulary = _vocabulary(ds)
    return found - leaked(found, vocabulary)


def _collect(ds: Dataset) -> set[str]:
    found: set[str] = set()
    for elem in ds.iterall():
        if elem.tag.is_private:
            continue
        values = elem.value if elem.VM > 1 else [elem.value]
        if elem.VR == "PN":
            for value in values:
                found.update(p for p in re.split(r"[\^=\s,]+", str(value)) if _usable(p))
        elif elem.keyword in IDENTIFYING:
            found.update(str(v).strip() for v in values if _usable(str(v)))
    return found


def header_text(path: Path) -> str:
    """Every header byte of a file (File Meta + dataset, pixel data left out) as text."""
    ds = dcmread(path)
    for tag in _BULK:
        if tag in ds:
            del ds[tag]
    buffer = DicomBytesIO()
    buffer.is_implicit_VR, buffer.is_little_endian = False, True
    write_dataset(buffer, ds.file_meta)
    write_dataset(buffer, ds)
    data = buffer.getvalue()
    return data.decode("latin-1") + "\n" + data.decode("utf-8", "ignore")


def leaked(tokens: set[str], text: str) -> set[str]:
    """Tokens found in ``text`` (case-insensitive, whole words / whole numbers)."""
    hits = set()
    for token in tokens:
        escaped = re.escape(token)
        pattern = rf"(?<!\d){escaped}(?!\d)" if token.isdigit() else rf"(?<!\w){escaped}(?!\w)"
        if re.search(pattern, text, re.IGNORECASE):
            hits.add(token)
    return hits


def instance_uids(ds: Dataset) -> set[str]:
    """Instance-level UIDs of the input (standard and junk UIDs left out)."""
    out = set()
    for elem in ds.iterall():
        if elem.keyword in _UID_KEYWORDS:
            for uid in elem.value if elem.VM > 1 else [elem.value]:
                uid = str(uid)
                if len(uid) >= 8 and not uid.startswith("1.2.840.10008."):
                    out.add(uid)
    return out


def all_uids(path: Path) -> set[str]:
    """Every UI value of a file."""
    ds = dcmread(path)
    out = {str(ds.file_meta.get("MediaStorageSOPInstanceUID", ""))}
    for elem in ds.iterall():
        if elem.VR == "UI":
            out.update(str(u) for u in (elem.value if elem.VM > 1 else [elem.value]))
    return out


def normalised_errors(lines: set[str]) -> set[str]:
    """dciodvfy error kinds with UIDs and numbers blanked (they change by design)."""
    return {_NUMBERS.sub("#", line) for line in lines}
