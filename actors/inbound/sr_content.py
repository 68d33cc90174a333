"""The measurement groups (TID 1501) of the inbound SR: one per task, one for the priority.

A task's group holds its TID 4019 algorithm identification, a qualitative evaluation of the
task's status, one qualitative evaluation per finding (``Imaging finding: <concept>``, or
``Quality Finding: <concept>`` for a ``qc.*`` code; a finding without a concept is coded in
the private scheme :data:`PRIVATE_SCHEME` with its stable code as value and meaning) and one
numeric measurement per finding with a finite ``value`` and a ``unit`` (UCUM).  Source
images of the group are the instances its findings refer to.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cache

from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Measurement,
    MeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForMeasurement,
    SourceImageForMeasurementGroup,
    TrackingIdentifier,
)
from pydicom.sr.codedict import codes

from dxai.actors.inbound.findings import Finding, TaskReport
from dxai.actors.inbound.sr_evidence import EvidenceIndex
from dxai.actors.inbound.study import InstanceRef

#: Coding scheme designator of dxai's own codes (finding codes, task status, priority).
PRIVATE_SCHEME = "99DXAI"
PRIVATE_SCHEME_NAME = "dxai inbound finding codes"
#: Concept name of a finding's qualitative evaluation: (SCT, 365853002, "Imaging finding").
#: (Not DCM 121071 "Finding": TID 1501 reserves that name for the group's one finding type.)
FINDING_NAME = CodedConcept("365853002", "SCT", "Imaging finding")
#: Concept name of a quality-control finding (code ``qc.*``): (DCM, 111052, "Quality Finding").
QUALITY_FINDING_NAME = CodedConcept("111052", "DCM", "Quality Finding")
#: Concept name of the triage priority: (SCT, 260870009, "Priority").
PRIORITY_NAME = CodedConcept("260870009", "SCT", "Priority")
#: Concept name of a task's status evaluation.
TASK_STATUS_NAME = CodedConcept("task_status", PRIVATE_SCHEME, "Task status")
#: The triage priorities, coded in the private scheme.
PRIORITY_VALUES = {
    "stat": CodedConcept("priority.stat", PRIVATE_SCHEME, "Stat"),
    "urgent": CodedConcept("priority.urgent", PRIVATE_SCHEME, "Urgent"),
    "routine": CodedConcept("priority.routine", PRIVATE_SCHEME, "Routine"),
}
#: Tracking identifier (TID 4108) of the priority group.
PRIORITY_TRACKING_ID = "dxai.priority"


def finding_concept(finding: Finding) -> CodedConcept:
    """How the SR codes ``finding``: its concept, else its stable code in the private scheme."""
    if finding.concept is not None:
        c = finding.concept
        return CodedConcept(c.value, c.scheme, c.meaning)
    return CodedConcept(finding.code, PRIVATE_SCHEME, finding.code)


def _name_of(finding: Finding) -> CodedConcept:
    return QUALITY_FINDING_NAME if finding.code.startswith("qc.") else FINDING_NAME


@cache
def _ucum_meanings() -> dict[str, str]:
    ucum = codes.UCUM
    return {getattr(ucum, kw).value: getattr(ucum, kw).meaning for kw in ucum.dir()}


def unit_concept(unit: str) -> CodedConcept:
    """The UCUM concept of ``unit``: pydicom's meaning when it knows the unit, else the unit."""
    return CodedConcept(unit, "UCUM", _ucum_meanings().get(unit, unit))


def _measurement(finding: Finding, refs: Sequence[InstanceRef]) -> Measurement | None:
    if finding.value is None or finding.unit is None or not math.isfinite(finding.value):
        return None
    images = [
        SourceImageForMeasurement(
            referenced_sop_class_uid=str(ref.header.SOPClassUID),
            referenced_sop_instance_uid=ref.sop_uid,
        )
        for ref in refs
    ]
    return Measurement(
        name=finding_concept(finding),
        value=float(finding.value),
        unit=unit_concept(finding.unit),
        referenced_images=images or None,
    )


def _group_sources(refs: Sequence[InstanceRef]) -> list[SourceImageForMeasurementGroup]:
    return [
        SourceImageForMeasurementGroup(
            referenced_sop_class_uid=str(ref.header.SOPClassUID),
            referenced_sop_instance_uid=ref.sop_uid,
        )
        for ref in refs
    ]


def task_group(
    report: TaskReport,
    algorithm: AlgorithmIdentification,
    index: EvidenceIndex,
    tracking_uid: str,
) -> MeasurementsAndQualitativeEvaluations:
    """The measurement group of one task's report."""
    status = CodedConcept(f"status.{report.status}", PRIVATE_SCHEME, report.status)
    evaluations = [QualitativeEvaluation(TASK_STATUS_NAME, status)]
    evaluations += [
        QualitativeEvaluation(FINDING_NAME, finding_concept(f)) for f in report.findings
    ]
    measurements = [
        m for f in report.findings if (m := _measurement(f, index.refs_of(f))) is not None
    ]
    sources = _group_sources(index.refs_of_all(report.findings))
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=tracking_uid, identifier=report.task),
        algorithm_id=algorithm,
        qualitative_evaluations=evaluations,
        measurements=measurements or None,
        source_images=sources or None,
    )


def priority_group(
    priority: str, algorithm: AlgorithmIdentification, tracking_uid: str
) -> MeasurementsAndQualitativeEvaluations:
    """The group carrying the study's triage priority (``stat`` / ``urgent`` / ``routine``)."""
    evaluation = QualitativeEvaluation(PRIORITY_NAME, PRIORITY_VALUES[priority])
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(uid=tracking_uid, identifier=PRIORITY_TRACKING_ID),
        algorithm_id=algorithm,
        qualitative_evaluations=[evaluation],
    )
