"""The inbound SR: a TID 1500 Comprehensive 3D SR that dciodvfy accepts and highdicom reads back."""

from __future__ import annotations

import subprocess
from pathlib import Path

import highdicom as hd
import pytest
from highdicom.sr.utils import find_content_items
from inbound_helpers import make_ct_series, new_uid, study_view
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.uid import Comprehensive3DSRStorage

from dxai.actors.inbound.findings import Concept, Finding, TaskReport, report_of
from dxai.actors.inbound.sr import AlgorithmInfo, SrBuildError, build_sr, sr_uids_for
from dxai.actors.inbound.sr_content import PRIVATE_SCHEME
from dxai.actors.inbound.study import StudyView
from dxai.configs.schema.clinical_out import SrConfig

DCIODVFY = "/usr/bin/dciodvfy"
HEMORRHAGE = Concept("50960005", "SCT", "Hemorrhage")


def _study() -> tuple[StudyView, list[Dataset], list[Dataset]]:
    head = make_ct_series(6, 2.5, 2.5)
    scout = make_ct_series(2, 5.0, 5.0, study_uid=head[0].StudyInstanceUID, series_number=1)
    for ds in head + scout:
        ds.PatientBirthDate, ds.PatientSex = "19700101", "F"
        ds.AccessionNumber, ds.StudyID, ds.StudyTime = "ACC-SR-1", "1", "101500"
    return study_view(head + scout), head, scout


def _reports(head: list[Dataset]) -> list[TaskReport]:
    series = str(head[0].SeriesInstanceUID)
    gap = Finding(
        "qc.slice_gap",
        "warning",
        "slice gap 5.0 mm between instances 3 and 4",
        "qc",
        series_uid=series,
        sop_uids=(str(head[2].SOPInstanceUID), str(head[3].SOPInstanceUID)),
        value=5.0,
        unit="mm",
    )
    kvp = Finding("qc.kvp_missing", "info", "kvp absent on 0 instances", "qc", series_uid=series)
    ich = Finding(
        "ai.ich",
        "blocking",
        "ich score 0.93",
        "ich",
        series_uid=series,
        sop_uids=(str(head[4].SOPInstanceUID),),
        concept=HEMORRHAGE,
        score=0.93,
    )
    return [report_of("qc", [gap, kvp]), report_of("ich", [ich])]


ALGORITHMS = [
    AlgorithmInfo("ich-net", "2.1.0", ("threshold=0.5",), task="ich"),
    AlgorithmInfo("dxai-qc", "1.4"),
]


def _build(study: StudyView, reports: list[TaskReport], key: str = "job-sr-1") -> Dataset:
    series_uid, sop_uid = sr_uids_for(key)
    return build_sr(
        study, reports, "stat", ALGORITHMS, SrConfig(), series_uid=series_uid, sop_uid=sop_uid
    )


def test_sr_passes_dciodvfy(tmp_path: Path) -> None:
    study, head, _ = _study()
    sr = _build(study, _reports(head))
    path = tmp_path / "sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    run = subprocess.run(
        [DCIODVFY, str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (run.stdout + run.stderr).splitlines()
    assert "Comprehensive3DSR" in lines
    assert [line for line in lines if line.startswith("Error")] == []


def test_sr_reads_back_with_findings_measurement_and_evidence(tmp_path: Path) -> None:
    study, head, scout = _study()
    path = tmp_path / "sr.dcm"
    _build(study, _reports(head)).save_as(path, enforce_file_format=True)
    sr = hd.sr.srread(path)
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    assert sr.SOPClassUID == Comprehensive3DSRStorage
    assert (sr.PatientID, sr.StudyInstanceUID) == (head[0].PatientID, head[0].StudyInstanceUID)
    assert sr.AccessionNumber == "ACC-SR-1"
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert set(groups) == {"qc", "ich", "dxai.priority"}
    qc_values = {e.value.value for e in groups["qc"].get_qualitative_evaluations()}
    assert {"qc.slice_gap", "qc.kvp_missing", "status.passed"} <= qc_values
    ich_values = [e.value for e in groups["ich"].get_qualitative_evaluations()]
    assert hd.sr.CodedConcept("50960005", "SCT", "Hemorrhage") in ich_values
    (measurement,) = groups["qc"].get_measurements()
    assert measurement.value == pytest.approx(5.0)
    assert (measurement.unit.value, measurement.unit.scheme_designator) == ("mm", "UCUM")
    refs = {img.referenced_sop_instance_uid for img in measurement.referenced_images}
    assert refs == {head[2].SOPInstanceUID, head[3].SOPInstanceUID}
    (priority,) = groups["dxai.priority"].get_qualitative_evaluations()
    assert (priority.name.value, priority.value.value) == ("260870009", "priority.stat")
    evidence = {(series, sop) for _, series, sop, _ in sr.get_evidence()}
    for ds in (head[2], head[3], head[4], scout[0]):
        assert (ds.SeriesInstanceUID, ds.SOPInstanceUID) in evidence
    assert {series for _, series in sr.get_evidence_series()} == {
        head[0].SeriesInstanceUID,
        scout[0].SeriesInstanceUID,
    }


def _algorithm_names(group: Dataset) -> list[str]:
    items = find_content_items(group, name=codes.DCM.AlgorithmName, recursive=True)
    return [str(item.TextValue) for item in items]


def test_each_group_names_its_algorithm() -> None:
    study, head, _ = _study()
    sr = hd.sr.Comprehensive3DSR.from_dataset(_build(study, _reports(head)))
    groups = {g.tracking_identifier: g for g in sr.content.get_image_measurement_groups()}
    assert _algorithm_names(groups["ich"][0]) == ["ich-net"]
    assert _algorithm_names(groups["qc"][0]) == ["dxai-qc"]
    params = find_content_items(groups["ich"][0], name=codes.DCM.AlgorithmParameters)
    assert [str(p.TextValue) for p in params] == ["threshold=0.5"]


def test_generic_finding_is_coded_in_the_private_scheme_which_is_declared() -> None:
    study, head, _ = _study()
    sr = _build(study, _reports(head))
    schemes = [item.CodingSchemeDesignator for item in sr.CodingSchemeIdentificationSequence]
    assert PRIVATE_SCHEME in schemes
    read = hd.sr.Comprehensive3DSR.from_dataset(sr)
    groups = {g.tracking_identifier: g for g in read.content.get_image_measurement_groups()}
    qc = groups["qc"]
    gap = [e.value for e in qc.get_qualitative_evaluations() if e.value.value == "qc.slice_gap"]
    assert [(c.scheme_designator, c.meaning) for c in gap] == [(PRIVATE_SCHEME, "qc.slice_gap")]


def test_sr_uids_are_deterministic_per_job_key() -> None:
    series_uid, sop_uid = sr_uids_for("job-a")
    assert sr_uids_for("job-a") == (series_uid, sop_uid)
    assert series_uid != sop_uid
    assert set(sr_uids_for("job-b")).isdisjoint({series_uid, sop_uid})
    root = "1.2.826.0.1.3680043.10.1137."
    rooted = sr_uids_for("job-a", uid_root=root)
    assert all(uid.startswith(root) and len(uid) <= 64 for uid in rooted)


def test_rebuild_gives_the_same_instance_and_tracking_uids() -> None:
    study, head, _ = _study()
    first, second = _build(study, _reports(head)), _build(study, _reports(head))
    assert first.SOPInstanceUID == second.SOPInstanceUID
    uids = [
        [
            g.tracking_uid
            for g in hd.sr.Comprehensive3DSR.from_dataset(ds).content.get_image_measurement_groups()
        ]
        for ds in (first, second)
    ]
    assert uids[0] == uids[1] and len(set(uids[0])) == 3


def test_instance_missing_library_attributes_stays_in_evidence() -> None:
    head = make_ct_series(3, 2.0, 2.0)
    del head[1].PixelSpacing
    study = study_view(head)
    finding = Finding("qc.x", "info", "x", "qc", sop_uids=(str(head[1].SOPInstanceUID),))
    sr = _build(study, [report_of("qc", [finding])])
    evidence = {sop for _, _, sop, _ in hd.sr.Comprehensive3DSR.from_dataset(sr).get_evidence()}
    assert head[1].SOPInstanceUID in evidence


def test_unknown_priority_and_empty_study_are_refused() -> None:
    study, _, _ = _study()
    series_uid, sop_uid = sr_uids_for("job-refused")
    with pytest.raises(SrBuildError):
        build_sr(study, [], "asap", [], SrConfig(), series_uid=series_uid, sop_uid=sop_uid)
    empty = StudyView(study_uid=new_uid(), series=())
    with pytest.raises(SrBuildError):
        build_sr(empty, [], "routine", [], SrConfig(), series_uid=series_uid, sop_uid=sop_uid)
