"""Every option column of Table E.1-1, private tags, overlays, curves, nested sequences."""

from __future__ import annotations

import datetime as dt

from deid_helpers import KEY, STUDY_UID, deidentifier, make_ds, named
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ComprehensiveSRStorage

from dxai.actors.deid.pseudonym import Pseudonymizer


def _days(a: str, b: str) -> int:
    f = "%Y%m%d"
    return (dt.datetime.strptime(b, f) - dt.datetime.strptime(a, f)).days


def test_retain_uids() -> None:
    out = deidentifier("retain_uids").deidentify(make_ds()).dataset
    assert out.StudyInstanceUID == STUDY_UID


def test_retain_device_identity() -> None:
    out = deidentifier("retain_device_identity").deidentify(make_ds()).dataset
    assert out.StationName == "CTSTATION7" and out.DeviceSerialNumber == "SN998877"


def test_retain_institution_identity() -> None:
    out = deidentifier("retain_institution_identity").deidentify(make_ds()).dataset
    assert out.InstitutionName == "Springfield General"


def test_retain_patient_characteristics() -> None:
    out = deidentifier("retain_patient_characteristics").deidentify(make_ds()).dataset
    assert out.PatientAge == "054Y" and out.PatientSex == "M"


def test_retain_full_dates() -> None:
    out = deidentifier("retain_longitudinal_full_dates").deidentify(make_ds()).dataset
    assert out.StudyDate == "20240102" and out.AcquisitionDate == "20240105"
    assert out.PatientBirthDate == ""  # not a longitudinal date


def test_modified_dates_shift_per_patient_and_keep_intervals() -> None:
    deid = deidentifier("retain_longitudinal_modified_dates")
    result = deid.deidentify(make_ds())
    out = result.dataset
    assert out.StudyDate != "20240102"
    assert _days(out.StudyDate, out.AcquisitionDate) == 3
    offset = result.date_offset_days
    assert offset is not None and offset != 0 and abs(offset) <= 365
    assert _days("20240102", out.StudyDate) == offset
    again = deid.deidentify(make_ds()).dataset  # same patient, same shift
    assert again.StudyDate == out.StudyDate
    other = make_ds()
    other.PatientID = "SOMEONE-ELSE-42"
    expected = Pseudonymizer(KEY, 365).date_offset_days("SOMEONE-ELSE-42")
    assert deid.deidentify(other).date_offset_days == expected


def test_date_shift_formats() -> None:
    p = Pseudonymizer(KEY, 30)
    assert p.shift_da("20240101", -1) == "20231231"
    assert p.shift_da("2024", 400) == "2025"
    assert p.shift_dt("20240101120000.5+0100", 1) == "20240102120000.5+0100"
    assert p.shift_da("garbage", 3) == "19000101"
    for pid in ("A", "B", "C", "D"):
        assert 0 < abs(p.date_offset_days(pid)) <= 30


def test_clean_descriptors_removes_known_phi_any_case_and_order() -> None:
    ds = make_ds()
    ds.ImageComments = "seen by house; patient DOE johnathan, MRN55443322 ok"
    out = deidentifier("clean_descriptors").deidentify(ds).dataset
    assert out.StudyDescription == "CT chest for"
    lowered = out.ImageComments.lower()
    assert "doe" not in lowered and "johnathan" not in lowered and "mrn55443322" not in lowered
    assert "house" not in lowered and "ok" in lowered
    plain = deidentifier().deidentify(make_ds()).dataset
    assert "StudyDescription" not in plain


def test_clean_structured_content_cleans_text_values() -> None:
    ds = make_ds(ComprehensiveSRStorage)
    item = Dataset()
    item.ValueType = "TEXT"
    item.RelationshipType = "CONTAINS"
    item.TextValue = "Findings for DOE^JOHNATHAN: normal"
    ds.ContentSequence = Sequence([item])
    out = deidentifier("clean_structured_content").deidentify(ds).dataset
    text = out.ContentSequence[0].TextValue
    assert "DOE" not in text.upper() and "normal" in text


def test_private_tags_removed_without_option() -> None:
    ds = make_ds()
    block = ds.private_block(0x00E1, "ELSCINT1", create=True)
    block.add_new(0x21, "DS", "12.5")  # safe: DLP
    out = deidentifier().deidentify(ds)
    assert not any(int(t) >> 16 & 1 for t in list(out.dataset.keys()))
    assert out.actions["private_removed"] == 2


def test_safe_private_kept_only_with_known_creator() -> None:
    ds = make_ds()
    safe = ds.private_block(0x00E1, "ELSCINT1", create=True)
    safe.add_new(0x21, "DS", "12.5")  # in Table E.3.10-1
    safe.add_new(0x22, "LO", "DOE^JOHNATHAN")  # same creator, not in the table
    unknown = ds.private_block(0x0009, "MYSTERY VENDOR", create=True)
    unknown.add_new(0x21, "LO", "secret")
    ds.add_new(0x00191010, "LO", "orphan without creator")
    out = deidentifier("retain_safe_private").deidentify(ds).dataset
    private = {int(t) for t in list(out.keys()) if int(t) >> 16 & 1}
    assert private == {0x00E10010, 0x00E11021}
    assert out[0x00E11021].value == 12.5


def test_nested_sequences_any_depth() -> None:
    ds = make_ds()
    inner = Dataset()
    inner.PatientName = "DEEP^NESTED"
    inner.ReferencedSOPInstanceUID = "1.2.826.0.1.3680043.99.7"
    middle = Dataset()
    middle.ReferencedImageSequence = Sequence([inner])
    middle.PerformingPhysicianName = "DEEPER^DOC"
    ds.ReferencedSeriesSequence = Sequence([middle])
    out = deidentifier().deidentify(ds).dataset
    deep = out.ReferencedSeriesSequence[0]
    assert "PerformingPhysicianName" not in deep
    item = deep.ReferencedImageSequence[0]
    assert str(item.PatientName).startswith("ANON^")
    assert item.ReferencedSOPInstanceUID.startswith("2.25.")


def test_overlays_curves_and_original_attributes() -> None:
    ds = make_ds()
    ds.add_new(0x60000010, "US", 4)
    ds.add_new(0x60000011, "US", 4)
    ds.add_new(0x60003000, "OW", b"\x01\x00" * 8)
    ds.add_new(0x60004000, "LT", "drawn by DOE")
    ds.add_new(0x50000005, "US", 2)
    original = Dataset()
    original.ModifiedAttributesSequence = Sequence([Dataset()])
    ds.OriginalAttributesSequence = Sequence([original])
    out = deidentifier().deidentify(ds).dataset
    assert not any(0x5000 <= int(t) >> 16 <= 0x60FF for t in list(out.keys()))
    assert "OriginalAttributesSequence" not in out
    kept = deidentifier("clean_graphics").deidentify(ds).dataset
    assert 0x60003000 in kept and 0x60000010 in kept
    assert "DOE" not in str(kept[0x60004000].value)


def test_unlisted_attributes_get_safe_defaults_and_are_reported() -> None:
    ds = make_ds()
    ds.SecondaryReviewerName = "REVIEWER^ROSE"  # PN, not in Table E.1-1
    ds.Manufacturer = "ACME for DOE"
    result = deidentifier().deidentify(ds)
    assert str(result.dataset.SecondaryReviewerName) == "ANONYMOUS"
    assert result.dataset.Manufacturer == "ACME for"
    assert result.defaults["(0014,0104)"] == "D"
    assert result.defaults["(0008,0070)"] == "C"


def test_named_profiles_apply() -> None:
    tele = named("teleradiology").deidentify(make_ds()).dataset
    assert tele.StudyDate == "20240102" and tele.PatientAge == "054Y"
    assert tele.StationName == "CTSTATION7"
    research = named("research_longitudinal").deidentify(make_ds()).dataset
    assert research.StudyDate not in ("", "20240102")
    hipaa = named("hipaa_safe_harbor").deidentify(make_ds()).dataset
    assert hipaa.StudyDate == "" and hipaa.StudyDescription == "CT chest for"
