"""Every action code of Table E.1-1 on small hand-built datasets."""

from __future__ import annotations

import re

import pytest
from deid_helpers import KEY, REF_UID, SOP_UID, STUDY_UID, deidentifier, make_ds
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, RTPlanStorage, SegmentationStorage

from dxai.actors.deid.iod import resolve_action
from dxai.actors.deid.pseudonym import keyed_uid
from dxai.actors.deid.table import compile_table, row_action, table_rows

UID_RE = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def test_table_loads_every_row_and_code() -> None:
    rows = table_rows()
    assert len(rows) == 621
    codes = {r["basicProfile"] for r in rows}
    assert codes == {"D", "Z", "X", "U", "X/D", "X/Z", "X/Z/D", "Z/D", "X/Z/U*"}
    table = compile_table(frozenset())
    assert table.actions[0x00100010] == "Z"  # PatientName
    assert table.private == "X" and table.curve == "X" and table.overlay_data == "X"
    assert compile_table(frozenset({"retain_safe_private"})).private == "C"


def test_option_clean_beats_keep() -> None:
    row = {"basicProfile": "X", "rtnDevIdOpt": "K", "rtnLongModifDatesOpt": "C"}
    assert row_action(row, ["retain_device_identity"]) == "K"
    opts = ["retain_device_identity", "retain_longitudinal_modified_dates"]
    assert row_action(row, opts) == "C"
    assert row_action(row, []) == "X"


@pytest.mark.parametrize(
    ("code", "family", "keyword", "depth", "expected"),
    [
        ("X/Z", "general", "AcquisitionDate", 0, "X"),
        ("X/Z", "rt", "TreatmentMachineName", 2, "Z"),
        ("X/D", "general", "SeriesDate", 0, "X"),
        ("X/D", "rt", "RTPlanDate", 0, "D"),
        ("X/Z/D", "general", "OperatorsName", 0, "X"),
        ("X/Z/D", "rt", "OperatorsName", 0, "Z"),
        ("X/Z/D", "enhanced", "DeviceSerialNumber", 0, "D"),
        ("Z/D", "general", "ContentDate", 0, "Z"),
        ("Z/D", "sr", "ContentDate", 0, "D"),
        ("X/Z/U*", "general", "ReferencedImageSequence", 0, "U"),
        ("Z", "dicomdir", "StudyDate", 1, "D"),
        ("X", "dicomdir", "StudyDescription", 1, "Z"),
        ("X", "general", "StudyDescription", 0, "X"),
        ("K", "general", "Anything", 0, "K"),
    ],
)
def test_combined_codes_resolve_by_iod_type(
    code: str, family: str, keyword: str, depth: int, expected: str
) -> None:
    assert resolve_action(code, family, keyword, depth) == expected


def test_basic_profile_actions() -> None:
    result = deidentifier().deidentify(make_ds())
    out = result.dataset
    # X
    for keyword in ("PatientAddress", "OtherPatientIDs", "StudyDescription", "InstitutionName"):
        assert keyword not in out
    assert "PatientAge" not in out and "StationName" not in out
    # Z
    assert out.AccessionNumber == "" and out.ReferringPhysicianName == ""
    assert out.PatientBirthDate == "" and out.StudyDate == ""
    # Z with a keyed pseudonym for the patient identity
    assert str(out.PatientName).startswith("ANON^") and out.PatientID.startswith("DXAI")
    # X/Z, X/D, X/Z/D, Z/D resolved for a CT image
    assert "AcquisitionDate" not in out and "SeriesDate" not in out
    assert "OperatorsName" not in out and "DeviceSerialNumber" not in out
    assert out.ContentDate == ""
    # U and X/Z/U*: remapped with the key, kept inside the sequence
    assert out.SOPInstanceUID == keyed_uid(KEY, SOP_UID)
    assert out.StudyInstanceUID == keyed_uid(KEY, STUDY_UID)
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == keyed_uid(KEY, REF_UID)
    assert out.ReferencedImageSequence[0].ReferencedSOPClassUID == CTImageStorage
    # Not in the table: kept (CS, LO scrubbed of PHI)
    assert out.Modality == "CT" and out.Manufacturer == "ACME"
    assert result.actions["X"] >= 4 and result.actions["U"] >= 3


def test_d_action_gives_vr_consistent_dummy() -> None:
    ds = make_ds()
    ds.VerifyingObserverName = "WATSON^JOHN"  # D, PN
    ds.ContainerIdentifier = "BOX-778"  # D, LO
    ds.FrameAcquisitionDateTime = "20240102101010"  # D, DT
    out = deidentifier().deidentify(ds).dataset
    assert str(out.VerifyingObserverName) == "ANONYMOUS"
    assert out.ContainerIdentifier == "ANONYMIZED"
    assert out.FrameAcquisitionDateTime == "19000101000000"


def test_type1_attributes_get_dummies_in_enhanced_iods() -> None:
    out = deidentifier().deidentify(make_ds(SegmentationStorage)).dataset
    assert out.DeviceSerialNumber == "ANONYMIZED"
    assert out.ContentDate == "19000101"


def test_rt_plan_keeps_type2_attributes_empty() -> None:
    ds = make_ds(RTPlanStorage)
    beam = Dataset()
    beam.TreatmentMachineName = "LINAC-SPRINGFIELD"
    ds.BeamSequence = Sequence([beam])
    out = deidentifier().deidentify(ds).dataset
    assert out.OperatorsName == ""
    assert out.BeamSequence[0].TreatmentMachineName == ""


def test_uids_are_valid_and_deterministic() -> None:
    first = keyed_uid(KEY, STUDY_UID)
    assert first == keyed_uid(KEY, STUDY_UID)
    assert first != keyed_uid(b"another key of 32 bytes........", STUDY_UID)
    for uid in (STUDY_UID, "1.2.3", "9" * 64, "0"):
        new = keyed_uid(KEY, uid)
        assert len(new) <= 64 and UID_RE.match(new)


def test_standard_uids_in_u_rows_are_not_remapped() -> None:
    ds = make_ds()
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.840.10008.1.2"
    out = deidentifier().deidentify(ds).dataset
    assert out.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.840.10008.1.2"


def test_original_dataset_is_untouched_unless_in_place() -> None:
    ds = make_ds()
    deidentifier().deidentify(ds)
    assert ds.PatientName == "DOE^JOHNATHAN"
    deidentifier().deidentify(ds, in_place=True)
    assert ds.PatientName != "DOE^JOHNATHAN"


def test_keep_tags_site_policy() -> None:
    out = deidentifier(keep_tags=("StationName",)).deidentify(make_ds()).dataset
    assert out.StationName == "CTSTATION7"


def test_marking_and_method_codes() -> None:
    out = deidentifier("clean_descriptors", "retain_longitudinal_modified_dates").deidentify(
        make_ds()
    )
    ds = out.dataset
    assert ds.PatientIdentityRemoved == "YES"
    assert "PS3.15" in ds.DeidentificationMethod
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113105", "113107"]
    assert all(i.CodingSchemeDesignator == "DCM" for i in ds.DeidentificationMethodCodeSequence)
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    plain = deidentifier().deidentify(make_ds()).dataset
    assert plain.LongitudinalTemporalInformationModified == "REMOVED"
    full = deidentifier("retain_longitudinal_full_dates").deidentify(make_ds()).dataset
    assert full.LongitudinalTemporalInformationModified == "UNMODIFIED"


def test_file_meta_follows_new_sop_instance_uid() -> None:
    out = deidentifier().deidentify(make_ds()).dataset
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
