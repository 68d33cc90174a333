"""Inbound QC (``dxai.actors.inbound.qc.run_qc``) on real pydicom datasets built in memory."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from inbound_helpers import (
    AXIAL,
    CORONAL,
    SAGITTAL,
    make_ct_series,
    make_mr_series,
    make_scout,
    new_uid,
    study_view,
    to_bytes,
)
from pydicom.dataset import Dataset

from dxai.actors.inbound.findings import TaskReport
from dxai.actors.inbound.qc import ProtocolLibrary, load_protocols, run_qc
from dxai.actors.inbound.qc_pixels import expected_pixel_bytes, spread
from dxai.actors.inbound.study import StudyView
from dxai.configs.errors import ConfigError, InvalidDicomError
from dxai.configs.schema.qc import QC_CODES, QcConfig

REFERENCE = Path(__file__).resolve().parents[1] / "data" / "reference" / "dicom"
#: reference files that are not complete images, and the finding they must give.
REFERENCE_DEFECTS = {
    # a character-set test file: CR Image Storage with Rows/Columns but no Pixel Data
    "varied/pydicom__chrJapMulti.dcm": "qc.missing_pixel_data",
}
COMPLETENESS = {
    code
    for code in QC_CODES
    if code
    not in {
        "qc.no_protocol",
        "qc.slice_thickness_out_of_range",
        "qc.kvp_out_of_range",
        "qc.contrast_phase_mismatch",
        "qc.too_few_series",
        "qc.non_contiguous_slices",
    }
}


@pytest.fixture(scope="module")
def library() -> ProtocolLibrary:
    return load_protocols()


def qc(
    datasets: list[Dataset] | list[Dataset | bytes], library: ProtocolLibrary, **cfg: object
) -> TaskReport:
    return run_qc(study_view(datasets), QcConfig.model_validate(cfg), library)


def codes(report: TaskReport) -> list[str]:
    return sorted(f.code for f in report.findings)


def test_clean_stroke_ct_passes(library: ProtocolLibrary) -> None:
    report = qc(make_ct_series(40, 5.0, 5.0), library)
    assert report.task == "qc"
    assert report.detail == "protocol=stroke_ct"
    assert report.findings == ()
    assert report.status == "passed"
    assert report.counts["loaded"] == 40
    assert report.counts["decoded"] == 16  # pixel_check_max_per_series


def test_missing_slice_and_wrong_thickness_give_exactly_two_findings(
    library: ProtocolLibrary,
) -> None:
    series = make_ct_series(30, 7.5, 5.0, missing={10})
    report = qc(series, library)
    assert report.detail == "protocol=stroke_ct"
    assert codes(report) == ["qc.slice_gap", "qc.slice_thickness_out_of_range"]
    gap = next(f for f in report.findings if f.code == "qc.slice_gap")
    assert gap.severity == "blocking" and report.status == "held"
    assert "1 missing slice between z=-75.0 and z=-65.0 mm (spacing 5.0 mm)" in gap.message
    assert gap.value == 1.0
    neighbours = {series[9].SOPInstanceUID, series[10].SOPInstanceUID}  # indices 9 and 11
    assert set(gap.sop_uids) == neighbours
    thick = next(f for f in report.findings if f.code == "qc.slice_thickness_out_of_range")
    assert thick.severity == "warning"
    assert (thick.value, thick.unit) == (7.5, "mm")
    assert len(thick.sop_uids) == 29
    assert thick.series_uid == series[0].SeriesInstanceUID


def test_several_gaps_are_counted(library: ProtocolLibrary) -> None:
    report = qc(make_ct_series(30, 5.0, 5.0, missing={5, 6, 20}), library)
    assert codes(report) == ["qc.slice_gap"]
    assert report.findings[0].value == 3.0
    assert "2 missing slices between" in report.findings[0].message


def test_scout_series_and_scout_in_the_axial_series_give_no_false_gap(
    library: ProtocolLibrary,
) -> None:
    axial = make_ct_series(20, 5.0, 5.0)
    study_uid = axial[0].StudyInstanceUID
    scouts = make_scout(study_uid, n=2)
    mixed = make_scout(study_uid, series_uid=axial[0].SeriesInstanceUID, n=1)
    mixed[0].InstanceNumber = 21
    report = qc(scouts + axial + mixed, library)
    assert report.findings == ()
    assert report.counts["image_series"] == 2
    assert report.counts["primary_series"] == 1


def test_missing_instance_number_without_a_position_gap(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    for ds in series[5:]:
        ds.InstanceNumber += 1  # numbers 1-5, 7-11: number 6 missing, positions contiguous
    report = qc(series, library)
    assert codes(report) == ["qc.missing_instance_number"]
    finding = report.findings[0]
    assert finding.blocking and finding.value == 1.0
    assert "between 1 and 11 (6)" in finding.message
    assert set(finding.sop_uids) == {series[4].SOPInstanceUID, series[5].SOPInstanceUID}


def test_truncated_pixel_data_is_blocking(library: ProtocolLibrary) -> None:
    series = make_ct_series(12, 5.0, 5.0)
    series[3].PixelData = series[3].PixelData[: len(series[3].PixelData) // 2]
    report = qc(series, library)
    assert codes(report) == ["qc.truncated_pixel_data"]
    finding = report.findings[0]
    assert finding.blocking and finding.sop_uids == (series[3].SOPInstanceUID,)
    assert (finding.value, finding.unit) == (32 * 32 * 2 / 2, "By")


def test_file_cut_off_in_pixel_data_is_blocking(library: ProtocolLibrary) -> None:
    series = make_ct_series(8, 5.0, 5.0)
    items: list[Dataset | bytes] = list(series)
    items[2] = to_bytes(series[2])[:-700]
    report = qc(items, library)
    assert [f.code for f in report.findings] in (
        ["qc.truncated_pixel_data"],
        ["qc.undecodable_pixel_data"],
    )
    assert report.findings[0].sop_uids == (series[2].SOPInstanceUID,)
    assert report.status == "held"


def test_garbage_instance_is_undecodable(library: ProtocolLibrary) -> None:
    series = make_ct_series(6, 5.0, 5.0)
    good = study_view(series)
    broken_ref = good.series[0].instances[1]

    def fail() -> Dataset:
        raise InvalidDicomError("cannot read")

    refs = list(good.series[0].instances)
    refs[1] = type(broken_ref)(
        broken_ref.header, fail, broken_ref.size_bytes, "1.2.840.10008.1.2.1"
    )
    study = type(good)(
        good.study_uid, (type(good.series[0])(good.series[0].series_uid, tuple(refs)),)
    )
    report = run_qc(study, QcConfig(), library)
    assert codes(report) == ["qc.undecodable_pixel_data"]
    assert report.findings[0].sop_uids == (broken_ref.sop_uid,)


def test_blank_image_is_found(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    series[0].PixelData = np.full((32, 32), -1000, dtype=np.int16).tobytes()
    report = qc(series, library)
    assert codes(report) == ["qc.blank_image"]
    assert report.findings[0].sop_uids == (series[0].SOPInstanceUID,)
    assert report.findings[0].severity == "warning"


def test_saturated_image_is_found(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    arr = np.full((32, 32), 32767, dtype=np.int16)
    arr[:8] = 0
    series[9].PixelData = arr.tobytes()
    report = qc(series, library)
    assert codes(report) == ["qc.saturated_image"]
    assert report.findings[0].value == pytest.approx(75.0)


def test_pixel_checks_are_sampled_but_lengths_checked_everywhere(
    library: ProtocolLibrary,
) -> None:
    series = make_ct_series(40, 5.0, 5.0)
    series[1].PixelData = np.zeros((32, 32), dtype=np.int16).tobytes()  # blank, not sampled
    series[2].PixelData = b"\0\0" * 10  # short: found on every instance
    report = qc(series, library, pixel_check_max_per_series=4)
    assert codes(report) == ["qc.truncated_pixel_data"]
    assert report.counts["decoded"] == 4
    assert spread(40, 4) == {0, 13, 26, 39}


def test_mr_series_give_no_false_findings(library: ProtocolLibrary) -> None:
    sagittal = make_mr_series(20)
    study_uid = sagittal[0].StudyInstanceUID
    axial = make_mr_series(15, study_uid, orientation=AXIAL, spacing_mm=3.3, thickness_mm=3.0)
    echoes = make_mr_series(12, study_uid, orientation=CORONAL)
    for ds in make_mr_series(12, study_uid, orientation=CORONAL):
        ds.SeriesInstanceUID = echoes[0].SeriesInstanceUID
        ds.InstanceNumber += 12
        echoes.append(ds)  # a second echo: two instances at every position
    report = qc(sagittal + axial + echoes, library)
    assert report.detail == "protocol=generic"
    assert report.findings == ()
    assert report.counts["image_series"] == 3


def test_headers_as_scanners_write_them(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    for ds in series:
        ds.SliceThickness = "5.000000 "
        ds.KVP = " 120 "
        ds.ImagePositionPatient = [" 0.0", "0 ", f"{float(ds.ImagePositionPatient[2]):.6f} "]
    del series[3].KVP
    series[4].PixelSpacing = ""
    del series[5].ImageOrientationPatient  # no geometry: left out of the geometry checks
    report = qc(series, library)
    assert report.findings == ()


def test_three_stacks_in_one_series_are_not_an_inconsistency(library: ProtocolLibrary) -> None:
    study_uid = new_uid()
    series_uid = new_uid()
    parts = []
    for orient in (AXIAL, CORONAL, SAGITTAL):
        parts += make_mr_series(5, study_uid, orientation=orient, spacing_mm=10.0)
    for index, ds in enumerate(parts):
        ds.SeriesInstanceUID, ds.InstanceNumber = series_uid, index + 1
    report = qc(parts, library)
    assert report.findings == ()


def test_a_stray_slice_orientation_is_reported(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    series[4].ImageOrientationPatient = [f"{v:g}" for v in CORONAL]
    report = qc(series, library)
    assert "qc.inconsistent_orientation" in codes(report)
    orientation = next(f for f in report.findings if f.code == "qc.inconsistent_orientation")
    assert orientation.sop_uids == (series[4].SOPInstanceUID,)
    assert not orientation.blocking


def test_duplicate_position_and_pixel_spacing(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    series[6].ImagePositionPatient = series[5].ImagePositionPatient
    series[8].PixelSpacing = ["0.7", "0.7"]
    report = qc(series, library)
    assert "qc.duplicate_position" in codes(report)
    assert "qc.inconsistent_pixel_spacing" in codes(report)
    assert next(
        f for f in report.findings if f.code == "qc.inconsistent_pixel_spacing"
    ).sop_uids == (series[8].SOPInstanceUID,)


def test_irregular_spacing(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0)
    series[5].ImagePositionPatient = ["0", "0", f"{-120.0 + 5 * 5.0 + 1.5}"]
    report = qc(series, library)
    assert codes(report) == ["qc.irregular_slice_spacing"]
    assert report.findings[0].value == pytest.approx(1.5)


def test_protocol_deviations_kvp_contrast_contiguity(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 2.5, 5.0, kvp=150.0, contrast_agent="IODINE")
    report = qc(series, library)
    assert report.detail == "protocol=stroke_ct"
    assert codes(report) == [
        "qc.contrast_phase_mismatch",
        "qc.kvp_out_of_range",
        "qc.non_contiguous_slices",
    ]
    assert all(f.severity == "warning" for f in report.findings)
    kvp = next(f for f in report.findings if f.code == "qc.kvp_out_of_range")
    assert (kvp.value, kvp.unit) == (150.0, "kV")


def test_cta_head_neck_expects_an_arterial_series(library: ProtocolLibrary) -> None:
    arterial = make_ct_series(
        20, 1.0, 1.0, description="CTA HEAD/NECK ARTERIAL", study_description="CTA HEAD NECK"
    )
    assert qc(arterial, library).detail == "protocol=cta_head_neck"
    assert qc(arterial, library).findings == ()
    plain = make_ct_series(20, 1.0, 1.0, description="HEAD W/O", study_description="CTA HEAD NECK")
    report = qc(plain, library)
    assert codes(report) == ["qc.contrast_phase_mismatch"]
    assert "arterial" in report.findings[0].message


def test_chest_ct_is_selected(library: ProtocolLibrary) -> None:
    series = make_ct_series(
        10, 1.0, 1.0, description="LUNG 1.0", study_description="CT CHEST", body_part="CHEST"
    )
    assert qc(series, library).detail == "protocol=chest_ct"


def test_too_few_series_when_only_a_scout_arrived(library: ProtocolLibrary) -> None:
    report = qc(make_scout(new_uid(), n=2), library)
    assert report.detail == "protocol=stroke_ct"
    assert codes(report) == ["qc.too_few_series"]


def test_severity_overrides_and_disabled(library: ProtocolLibrary) -> None:
    series = make_ct_series(10, 5.0, 5.0, missing={4})
    report = qc(series, library, severities={"qc.slice_gap": "warning"})
    assert [f.severity for f in report.findings] == ["warning"]
    assert report.status == "passed"
    assert qc(series, library, enabled=False).status == "skipped"
    with pytest.raises(ValueError, match=r"qc\.no_such_code"):
        QcConfig(severities={"qc.no_such_code": "info"})


def test_empty_study_is_blocking(library: ProtocolLibrary) -> None:
    report = run_qc(StudyView("1.2.3", ()), QcConfig(), library)
    assert codes(report) == ["qc.empty_study"] and report.holds


def test_messages_carry_no_phi(library: ProtocolLibrary) -> None:
    series = make_ct_series(30, 7.5, 5.0, missing={3}, kvp=60.0, contrast_agent="IODINE")
    for ds in series:
        ds.PatientName, ds.PatientID = "DOE^JANE", "MRN123456"
        ds.StudyDescription = "CT HEAD for Jane Doe"
    report = qc(series, library)
    assert len(report.findings) >= 3
    text = " ".join(f.message for f in report.findings) + report.detail
    for phi in ("DOE", "Jane", "MRN123456", "IODINE"):
        assert phi.lower() not in text.lower()


def test_expected_pixel_bytes_follows_the_header() -> None:
    ds = Dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.SamplesPerPixel = 10, 11, 1, 1
    ds.NumberOfFrames = "3"
    assert expected_pixel_bytes(ds) == 42  # ceil(330 bits / 8)
    ds.BitsAllocated, ds.SamplesPerPixel, ds.PhotometricInterpretation = 8, 3, "YBR_FULL_422"
    assert expected_pixel_bytes(ds) == 10 * 11 * 3 * 2


def test_load_protocols_reports_the_dotted_key(tmp_path: Path) -> None:
    bad = tmp_path / "protocols.yaml"
    bad.write_text(
        "protocols:\n  stroke:\n    checks:\n      slice_thickness_mm: {min: 5, max: 1}\n"
        "  other:\n    match: {modalitys: [CT]}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_protocols(bad)
    assert "protocols.stroke.checks.slice_thickness_mm" in str(err.value)
    assert "protocols.other.match.modalitys" in str(err.value)
    bad.write_text("protocols: [", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_protocols(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_protocols(tmp_path / "absent.yaml")


def test_packaged_protocols_cover_the_study_types(library: ProtocolLibrary) -> None:
    assert {"stroke_ct", "cta_head_neck", "chest_ct", "generic"} <= set(library.names)
    stroke = library.definitions.protocols["stroke_ct"].checks
    assert stroke.contrast_phase == "none" and stroke.contiguous_slices
    assert stroke.slice_thickness_mm is not None and stroke.slice_thickness_mm.contains(5.0)
    assert library.definitions.protocols["cta_head_neck"].checks.contrast_phase == "arterial"


def _reference_files() -> list[str]:
    with (REFERENCE / "MANIFEST.csv").open(encoding="utf-8") as handle:
        rows = [row["file"] for row in csv.DictReader(handle)]
    return [name for name in rows if (REFERENCE / name).is_file()]


@pytest.mark.parametrize("name", _reference_files())
def test_reference_files_give_no_false_completeness_findings(
    name: str, library: ProtocolLibrary
) -> None:
    study = study_view([(REFERENCE / name).read_bytes()])
    report = run_qc(study, QcConfig(), library)
    blocking = sorted(f.code for f in report.findings if f.code in COMPLETENESS and f.blocking)
    expected = [REFERENCE_DEFECTS[name]] if name in REFERENCE_DEFECTS else []
    assert blocking == expected
    assert report.counts["series"] == 1
