"""The inbound findings as a DICOM Structured Report: TID 1500 Measurement Report (pure).

SOP class: **Comprehensive 3D SR**.  TID 1500 may be carried by Enhanced, Comprehensive or
Comprehensive 3D SR; only the 3D one admits the volumetric ROI groups (TID 1411, SCOORD3D) that
AI findings with 3D regions need, and a re-run must store the same SOP Instance under the same
SOP class (idempotent STOW), so the class is chosen once for all content this module may grow.

Content: language, observer context of the device (TID 1002/1004), procedure reported, an
image library (TID 1600) of the referenced instances, then one measurement group (TID 1501)
per task plus one for the triage priority (see :mod:`dxai.actors.inbound.sr_content`).
Patient and study attributes are copied by highdicom from the evidence (the source headers).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from highdicom.coding_schemes import CodingSchemeIdentificationItem
from highdicom.sr import (
    AlgorithmIdentification,
    CodedConcept,
    Comprehensive3DSR,
    DeviceObserverIdentifyingAttributes,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    ObserverContext,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import PYDICOM_ROOT_UID, generate_uid

from dxai.actors.inbound.findings import TaskReport
from dxai.actors.inbound.sr_content import (
    PRIORITY_VALUES,
    PRIVATE_SCHEME,
    PRIVATE_SCHEME_NAME,
    priority_group,
    task_group,
)
from dxai.actors.inbound.sr_evidence import EvidenceIndex, evidence_datasets, library_datasets
from dxai.actors.inbound.study import StudyView
from dxai.configs.errors import PermanentError
from dxai.configs.schema.clinical_out import SrConfig

__all__ = [
    "PROCEDURE_REPORTED",
    "SR_NAMESPACE",
    "AlgorithmInfo",
    "SrBuildError",
    "build_sr",
    "sr_uids_for",
]

#: Namespace mixed into every UID derived here (so a job key alone never yields the UID).
SR_NAMESPACE = "dxai.inbound.sr.v1"
#: Procedure reported (TID 1500 row 4): (SCT, 363679005, "Imaging procedure").
PROCEDURE_REPORTED = CodedConcept("363679005", "SCT", "Imaging procedure")
#: Observer type of the device observer (CID 270): (DCM, 121007, "Device").
OBSERVER_TYPE_DEVICE = codes.cid270.Device


class SrBuildError(PermanentError):
    """The SR could not be built from the study and reports (nothing to reference, bad input)."""

    code = "sr_build_failed"


@dataclass(frozen=True)
class AlgorithmInfo:
    """An algorithm for TID 4019: name, version, parameters (``key=value`` strings).

    ``task``: the task whose group it identifies; None: any task without an algorithm of its
    own (and the priority group).
    """

    name: str
    version: str
    parameters: tuple[str, ...] = ()
    task: str | None = None


def sr_uids_for(job_key: str, *, uid_root: str | None = None) -> tuple[str, str]:
    """Deterministic (Series Instance UID, SOP Instance UID) of the SR of job ``job_key``.

    The same job key always gives the same UIDs, so a re-run stores the same SR instance.
    ``uid_root``: the institution's root (ending in '.'); None: pydicom's root.
    """
    return _derived_uid(uid_root, job_key, "series"), _derived_uid(uid_root, job_key, "instance")


def _derived_uid(root: str | None, *parts: str) -> str:
    """A UID under ``root`` (pydicom's root when None) hashed from ``parts``: deterministic.

    (``generate_uid`` with ``prefix=None`` would ignore the entropy and return a random UUID
    UID.)
    """
    prefix = root or PYDICOM_ROOT_UID
    return str(generate_uid(prefix=prefix, entropy_srcs=[SR_NAMESPACE, *parts]))


def _observation_context(config: SrConfig) -> ObservationContext:
    device_uid = config.device_uid or _derived_uid(
        config.uid_root, "device", config.manufacturer, config.model_name
    )
    device = DeviceObserverIdentifyingAttributes(
        uid=device_uid,
        name=config.device_name,
        manufacturer_name=config.manufacturer,
        model_name=config.model_name,
        serial_number=config.device_serial_number,
    )
    observer = ObserverContext(
        observer_type=OBSERVER_TYPE_DEVICE, observer_identifying_attributes=device
    )
    return ObservationContext(observer_device_context=observer)


def _algorithm_for(
    task: str | None, algorithms: Sequence[AlgorithmInfo], config: SrConfig
) -> AlgorithmIdentification:
    """The task's own algorithm, else the first general one, else the configured default."""
    chosen = next((a for a in algorithms if task is not None and a.task == task), None)
    chosen = chosen or next((a for a in algorithms if a.task is None), None)
    if chosen is None:
        return AlgorithmIdentification(name=config.algorithm_name, version=config.algorithm_version)
    return AlgorithmIdentification(
        name=chosen.name, version=chosen.version, parameters=list(chosen.parameters) or None
    )


def _groups(
    index: EvidenceIndex,
    reports: Sequence[TaskReport],
    priority: str,
    algorithms: Sequence[AlgorithmInfo],
    config: SrConfig,
    sop_uid: str,
) -> list[MeasurementsAndQualitativeEvaluations]:
    groups = [
        task_group(
            report,
            _algorithm_for(report.task, algorithms, config),
            index,
            _derived_uid(config.uid_root, sop_uid, "task", report.task, str(number)),
        )
        for number, report in enumerate(reports)
    ]
    tracking = _derived_uid(config.uid_root, sop_uid, "priority")
    groups.append(priority_group(priority, _algorithm_for(None, algorithms, config), tracking))
    return groups


def build_sr(
    study: StudyView,
    reports: Sequence[TaskReport],
    priority: str,
    algorithms: Sequence[AlgorithmInfo],
    config: SrConfig,
    *,
    series_uid: str,
    sop_uid: str,
) -> Dataset:
    """The Comprehensive 3D SR (TID 1500) of the inbound ``reports`` on ``study``.

    ``priority``: ``stat``, ``urgent`` or ``routine``.  Raises :class:`SrBuildError` when the
    priority is unknown, the study has no referenceable instance or highdicom refuses the
    content.
    """
    if priority not in PRIORITY_VALUES:
        raise SrBuildError(f"unknown triage priority; expected one of {sorted(PRIORITY_VALUES)}")
    index = EvidenceIndex.of(study)
    evidence = evidence_datasets(index.evidence(reports))
    if not evidence:
        raise SrBuildError("the study has no instance the SR could reference")
    if not all(_valid_uids(ds) for ds in evidence):
        # strict when writing: the SR would carry them (its study, its references)
        raise SrBuildError("the study's UIDs are not valid DICOM UIDs")
    try:
        return _document(
            index, evidence, reports, priority, algorithms, config, series_uid, sop_uid
        )
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        raise SrBuildError(f"highdicom refused the SR content ({type(exc).__name__})") from exc


def _document(
    index: EvidenceIndex,
    evidence: list[Dataset],
    reports: Sequence[TaskReport],
    priority: str,
    algorithms: Sequence[AlgorithmInfo],
    config: SrConfig,
    series_uid: str,
    sop_uid: str,
) -> Comprehensive3DSR:
    report = MeasurementReport(
        observation_context=_observation_context(config),
        procedure_reported=PROCEDURE_REPORTED,
        imaging_measurements=_groups(index, reports, priority, algorithms, config, sop_uid),
        referenced_images=library_datasets(evidence) or None,
    )
    return Comprehensive3DSR(
        evidence=evidence,
        content=report,
        series_instance_uid=series_uid,
        series_number=config.series_number,
        sop_instance_uid=sop_uid,
        instance_number=1,
        manufacturer=config.manufacturer,
        manufacturer_model_name=config.model_name,
        software_versions=config.software_version,
        device_serial_number=config.device_serial_number,
        is_complete=True,
        is_final=config.final,
        institution_name=config.institution_name,
        series_description=config.series_description,
        coding_schemes=[
            CodingSchemeIdentificationItem(designator=PRIVATE_SCHEME, name=PRIVATE_SCHEME_NAME)
        ],
    )


_UID = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def _valid_uids(ds: Dataset) -> bool:
    """Whether the UIDs the SR copies or references from ``ds`` are valid (PS3.5 9.1)."""
    uids = (ds.get(k, "") for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"))
    return all(len(str(u)) <= 64 and _UID.match(str(u)) for u in uids)
