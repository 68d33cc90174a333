"""Preflight (``dxai.actors.inbound.qc.preflight``): sizes, transfer syntaxes, attributes."""

from __future__ import annotations

import numpy as np
import pytest
from inbound_helpers import make_ct_series, study_view
from pydantic import ValidationError
from pydicom.dataset import Dataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    RLELossless,
)

from dxai.actors.inbound.findings import TaskReport
from dxai.actors.inbound.qc import preflight
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.schema.qc import PreflightTarget


def rle_series(n: int, smooth: bool = False) -> list[Dataset]:
    """A CT series compressed with RLE Lossless (pydicom's own encoder); ``smooth``: 128x128
    gradients that compress well, so the native size is far above the compressed one."""
    series: list[Dataset] = make_ct_series(
        n, 5.0, 5.0, rows=128 if smooth else 32, cols=128 if smooth else 32
    )
    for ds in series:
        if smooth:
            ds.PixelData = np.tile(np.arange(128, dtype=np.int16), (128, 1)).tobytes()
        ds.compress(RLELossless, generate_instance_uid=False)
    return series


def as_syntax(study: StudyView, syntax: str) -> StudyView:
    """``study`` with every InstanceRef claiming ``syntax`` (what a gateway reports)."""
    return StudyView(
        study.study_uid,
        tuple(
            SeriesView(
                s.series_uid,
                tuple(InstanceRef(r.header, r.load, r.size_bytes, syntax) for r in s.instances),
            )
            for s in study.series
        ),
    )


def codes(report: TaskReport) -> list[str]:
    return sorted(f.code for f in report.findings)


def test_no_limits_pass() -> None:
    report = preflight(study_view(make_ct_series(5, 5.0, 5.0)), PreflightTarget())
    assert report.task == "preflight"
    assert report.findings == () and report.status == "passed"
    assert report.counts == {"instances": 5, "transcoded": 0}


def test_study_and_instance_size_limits_block() -> None:
    study = study_view(make_ct_series(5, 5.0, 5.0))
    sizes = [r.size_bytes for s in study.series for r in s.instances]
    target = PreflightTarget(max_study_bytes=sum(sizes) - 1, max_instance_bytes=max(sizes) - 1)
    report = preflight(study, target)
    assert codes(report) == ["preflight.instance_too_large", "preflight.study_too_large"]
    assert report.holds
    study_finding = next(f for f in report.findings if f.code == "preflight.study_too_large")
    assert (study_finding.value, study_finding.unit) == (float(sum(sizes)), "By")
    assert preflight(study, PreflightTarget(max_study_bytes=sum(sizes))).findings == ()


def test_lossless_not_accepted_is_decompressed_with_a_warning() -> None:
    study = study_view(rle_series(4))
    target = PreflightTarget(accepted_transfer_syntaxes=(ExplicitVRLittleEndian,))
    report = preflight(study, target)
    assert codes(report) == ["preflight.transcode"]
    finding = report.findings[0]
    assert finding.severity == "warning" and report.status == "passed"
    assert "RLE Lossless will be decompressed to Explicit VR Little Endian" in finding.message
    assert len(finding.sop_uids) == 4 and report.counts["transcoded"] == 4


def test_decompressed_size_counts_against_the_instance_limit() -> None:
    study = study_view(rle_series(2, smooth=True))
    largest = max(r.size_bytes for s in study.series for r in s.instances)
    assert largest < 128 * 128 * 2
    limit = PreflightTarget(max_instance_bytes=largest)
    assert preflight(study, limit).findings == ()  # sent as it is: within the limit
    target = limit.model_copy(update={"accepted_transfer_syntaxes": (ExplicitVRLittleEndian,)})
    report = preflight(study, target)
    assert codes(report) == ["preflight.instance_too_large", "preflight.transcode"]
    too_large = next(f for f in report.findings if f.code == "preflight.instance_too_large")
    assert too_large.value == float(128 * 128 * 2) and len(too_large.sop_uids) == 2


def test_lossy_not_accepted_blocks_unless_allowed() -> None:
    lossy = as_syntax(study_view(make_ct_series(2, 5.0, 5.0)), JPEGBaseline8Bit)
    target = PreflightTarget(accepted_transfer_syntaxes=(ExplicitVRLittleEndian,))
    report = preflight(lossy, target)
    assert codes(report) == ["preflight.lossy_not_accepted"] and report.holds
    assert "JPEG Baseline" in report.findings[0].message
    allowed = target.model_copy(update={"allow_lossy_decompression": True})
    assert codes(preflight(lossy, allowed)) == ["preflight.transcode"]
    accepted = PreflightTarget(accepted_transfer_syntaxes=(JPEGBaseline8Bit,))
    assert preflight(lossy, accepted).findings == ()


def test_not_transcodable_blocks() -> None:
    study = study_view(rle_series(2))
    only_j2k = PreflightTarget(accepted_transfer_syntaxes=(JPEG2000Lossless,))
    assert codes(preflight(study, only_j2k)) == ["preflight.transfer_syntax_not_accepted"]
    no_transcode = PreflightTarget(
        accepted_transfer_syntaxes=(ExplicitVRLittleEndian,), can_transcode=False
    )
    report = preflight(study, no_transcode)
    assert codes(report) == ["preflight.transfer_syntax_not_accepted"]
    assert "transcoding is off" in report.findings[0].message


def test_native_to_other_native_is_a_conversion() -> None:
    study = study_view(make_ct_series(3, 5.0, 5.0))
    report = preflight(study, PreflightTarget(accepted_transfer_syntaxes=(ImplicitVRLittleEndian,)))
    assert codes(report) == ["preflight.transcode"]
    assert "converted to Implicit VR Little Endian" in report.findings[0].message


def test_required_attributes_missing_block() -> None:
    series = make_ct_series(4, 5.0, 5.0)
    series[0].AccessionNumber = "A1"
    for ds in series[1:3]:
        ds.AccessionNumber = ""
    report = preflight(
        study_view(series), PreflightTarget(required_attributes=("AccessionNumber", "Modality"))
    )
    assert codes(report) == ["preflight.missing_attribute"]
    finding = report.findings[0]
    assert finding.blocking and finding.value == 3.0
    assert set(finding.sop_uids) == {ds.SOPInstanceUID for ds in series[1:]}
    assert "AccessionNumber" in finding.message and "A1" not in finding.message


def test_target_validation() -> None:
    with pytest.raises(ValidationError, match="not DICOM keywords"):
        PreflightTarget(required_attributes=("NoSuchKeyword",))
    with pytest.raises(ValidationError, match="not UIDs"):
        PreflightTarget(accepted_transfer_syntaxes=("jpeg",))
    with pytest.raises(ValidationError, match="unknown finding code"):
        PreflightTarget(severities={"qc.slice_gap": "info"})
    relaxed = PreflightTarget(
        required_attributes=("AccessionNumber",),
        severities={"preflight.missing_attribute": "warning"},
    )
    report = preflight(study_view(make_ct_series(2, 5.0, 5.0)), relaxed)
    assert report.status == "passed" and report.findings[0].severity == "warning"
