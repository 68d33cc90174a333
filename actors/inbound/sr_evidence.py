"""Which source instances the inbound SR refers to, and the evidence datasets handed to highdicom.

Evidence: every instance a finding names (its ``sop_uids``; the first instance of its series
when it names a series but no instance), plus the first instance of every series, so each
series of the study is referenced at least once.  References to instances that are not in the
study as received are left out (there is no header to reference them by).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from highdicom._standard_utils import get_sop_class_iod_map  # pinned highdicom <0.29
from highdicom.sr import ImageLibraryEntryDescriptors
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from dxai.actors.inbound.findings import Finding, TaskReport
from dxai.actors.inbound.study import InstanceRef, StudyView

#: Patient / study attributes highdicom reads from the first evidence dataset (all Type 2 in
#: the SR IOD: present, possibly empty).
_REQUIRED_TYPE2 = (
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyID",
    "StudyDate",
    "StudyTime",
    "ReferringPhysicianName",
)
_PATIENT_SEX_VALUES = frozenset({"M", "F", "O"})
_REFERENCE_KEYS = ("SOPClassUID", "SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")


@dataclass(frozen=True)
class EvidenceIndex:
    """The study's referenceable instances in study order, by SOP and by series UID."""

    order: tuple[InstanceRef, ...]
    by_sop: dict[str, InstanceRef]
    first_of_series: dict[str, InstanceRef]

    @classmethod
    def of(cls, study: StudyView) -> EvidenceIndex:
        """Index ``study``; instances whose header lacks a referencing UID are left out."""
        order: list[InstanceRef] = []
        first: dict[str, InstanceRef] = {}
        for series in study.series:
            for ref in series.instances:
                if all(ref.header.get(key) for key in _REFERENCE_KEYS):
                    order.append(ref)
                    first.setdefault(series.series_uid, ref)
        return cls(tuple(order), {ref.sop_uid: ref for ref in order}, first)

    def refs_of(self, finding: Finding) -> list[InstanceRef]:
        """The instances ``finding`` refers to that are in the study (may be empty)."""
        if finding.sop_uids:
            return [self.by_sop[uid] for uid in finding.sop_uids if uid in self.by_sop]
        if finding.series_uid is not None and finding.series_uid in self.first_of_series:
            return [self.first_of_series[finding.series_uid]]
        return []

    def refs_of_all(self, findings: Iterable[Finding]) -> list[InstanceRef]:
        """The instances any of ``findings`` refers to, without repeats, in study order."""
        wanted = {ref.sop_uid for f in findings for ref in self.refs_of(f)}
        return [ref for ref in self.order if ref.sop_uid in wanted]

    def evidence(self, reports: Sequence[TaskReport]) -> list[InstanceRef]:
        """Referenced instances plus one per series, in study order."""
        wanted = {ref.sop_uid for ref in self.first_of_series.values()}
        wanted.update(ref.sop_uid for ref in self.refs_of_all(_findings(reports)))
        return [ref for ref in self.order if ref.sop_uid in wanted]


def _findings(reports: Sequence[TaskReport]) -> list[Finding]:
    return [f for report in reports for f in report.findings]


def evidence_datasets(refs: Sequence[InstanceRef]) -> list[Dataset]:
    """The headers of ``refs``; the first one (patient and study source) completed for highdicom.

    highdicom reads the patient and study Type 2 attributes of the first evidence dataset as
    attributes; a header without one gets it empty (a copy: the caller's header is untouched),
    and a Patient's Sex outside M/F/O is emptied rather than refused.
    """
    if not refs:
        return []
    refs = _known_first(refs)
    first = copy.deepcopy(refs[0].header)
    for keyword in _REQUIRED_TYPE2:
        if keyword not in first:
            setattr(first, keyword, "")
    if str(first.PatientSex or "") not in _PATIENT_SEX_VALUES:
        first.PatientSex = ""
    normalise_copied(first)
    return [first, *(ref.header for ref in refs[1:])]


def _known_first(refs: Sequence[InstanceRef]) -> list[InstanceRef]:
    """``refs`` with the first one whose SOP class highdicom knows (it copies the patient and
    study modules by that class's IOD: a retired class, US Image Storage of 1993 say, is not
    in its map) moved to the front; unchanged when none is known."""
    known = get_sop_class_iod_map()
    for i, ref in enumerate(refs):
        if str(ref.header.get("SOPClassUID", "")) in known:
            return [ref, *refs[:i], *refs[i + 1 :]]
    return list(refs)


#: a date, time or age as old scanners write them (ACR-NEMA ``1999.09.23``, ``15:18:59``,
#: ``75Y``); what is left after the separators must be the DICOM form
_DA = re.compile(r"^\d{8}$")
_TM = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")
_AS = re.compile(r"^(\d{1,3})([DWMY])$")
_AS_PADDED = re.compile(r"^\d{3}[DWMY]$")


def normalise_copied(ds: Dataset) -> None:
    """Make the values the SR copies from the source (patient and study module) valid for
    their VR, or empty: strict when writing.  Old separators are dropped (``1999.09.23``,
    ``15:18:59``), a short age is zero-padded (``75Y`` -> ``075Y``), an empty first value of
    Specific Character Set (the default repertoire) is named; anything else invalid is emptied."""
    for keyword in ("StudyDate", "PatientBirthDate"):
        _fix(ds, keyword, lambda v: v.replace(".", "").replace("-", "").replace("/", ""), _DA)
    _fix(ds, "StudyTime", lambda v: v.replace(":", ""), _TM)
    _fix(ds, "PatientAge", _padded_age, _AS_PADDED)
    charset = ds.get("SpecificCharacterSet")
    if isinstance(charset, list | MultiValue) and charset and not str(charset[0]).strip():
        ds.SpecificCharacterSet = ["ISO 2022 IR 6", *[str(c) for c in charset[1:]]]


def _fix(ds: Dataset, keyword: str, clean: Callable[[str], str], valid: re.Pattern[str]) -> None:
    if keyword not in ds:
        return
    value = clean(str(ds.get(keyword) or "").strip())
    setattr(ds, keyword, value if valid.match(value) else "")


def _padded_age(value: str) -> str:
    found = _AS.match(value.upper())
    return f"{int(found.group(1)):03d}{found.group(2)}" if found else value


def library_datasets(datasets: Sequence[Dataset]) -> list[Dataset]:
    """The evidence datasets that can be described in the image library (TID 1600).

    The library is optional descriptive content: an instance whose header lacks what its
    entry descriptors need (Rows, Pixel Spacing, ...) or that is not an image stays in the
    evidence and out of the library.
    """
    return [ds for ds in datasets if _describable(ds)]


def _describable(ds: Dataset) -> bool:
    try:
        ImageLibraryEntryDescriptors(ds)
    except (AttributeError, KeyError, ValueError, TypeError, IndexError):
        return False
    return True
