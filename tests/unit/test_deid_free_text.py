"""Free text, structured content, encapsulated documents, names typed without their accents.

Every hard object (tests/unit/deid_objects.py) goes through the Basic Profile and each Clean
option; an independent check (tests/unit/deid_leakcheck.py, no dxai code) then serialises the
output and finds none of the planted PHI strings in any spelling, and the verify pass passes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import pytest
from deid_helpers import KEY, make_ds, write
from deid_leakcheck import leaks, output_texts, squash
from deid_objects import (
    CLINICAL,
    OBJECTS,
    PATIENT,
    encapsulated_pdf,
    flate_pdf,
    structured_report,
)
from pydicom import dcmread
from pydicom.dataset import Dataset
from pypdf import PdfReader

from dxai.actors.deid import Deidentifier
from dxai.actors.deid.document import document_bytes
from dxai.actors.outbound import deidentify_file
from dxai.configs.schema.deid import DeidConfig, DeidProfile

pytestmark = pytest.mark.unit

PROFILES: dict[str, DeidProfile] = {
    "basic": DeidProfile(),
    "clean_descriptors": DeidProfile(options=("clean_descriptors",)),
    "clean_structured_content": DeidProfile(options=("clean_structured_content",)),
    "clean_graphics": DeidProfile(options=("clean_graphics",)),
    "clean_documents": DeidProfile(clean_encapsulated_documents=True),
    "all_clean": DeidProfile(
        options=("clean_descriptors", "clean_structured_content", "clean_graphics"),
        clean_encapsulated_documents=True,
    ),
    "retain_safe_private": DeidProfile(options=("retain_safe_private", "clean_descriptors")),
    "hipaa_safe_harbor": DeidConfig().profiles["hipaa_safe_harbor"],
}


def _deid(profile: str | DeidProfile) -> Deidentifier:
    chosen = PROFILES[profile] if isinstance(profile, str) else profile
    return Deidentifier(chosen, KEY, profile_name="test")


def _run(profile: str, ds: Dataset) -> Dataset:
    """De-identify ``ds`` and assert that the de-identifier's own verify pass holds nothing."""
    deid = _deid(profile)
    result = deid.deidentify(ds)
    check = deid.verify(result.dataset, result.phi_values, original_uids=result.original_uids)
    assert check.passed, check.findings
    return result.dataset


def _pdf_text(data: bytes) -> str:
    return "\n".join(p.extract_text() or "" for p in PdfReader(io.BytesIO(data)).pages)


@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_the_independent_check_sees_every_planted_string_in_the_input(kind: str) -> None:
    ds, planted = OBJECTS[kind]()
    assert leaks(ds, planted) == set(planted)  # the check works, and the PHI is really there


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize("kind", sorted(OBJECTS))
def test_no_planted_phi_left_in_any_spelling(kind: str, profile: str) -> None:
    build: Callable[[], tuple[Dataset, tuple[str, ...]]] = OBJECTS[kind]
    ds, planted = build()
    out = _run(profile, ds)
    assert leaks(out, planted) == set()


@pytest.mark.parametrize("profile", ["basic", "hipaa_safe_harbor"])
@pytest.mark.parametrize("kind", ["structured_report", "encapsulated_pdf", "iso2022_ir87"])
def test_the_file_pipeline_writes_clean_outputs(tmp_path: Path, kind: str, profile: str) -> None:
    ds, planted = OBJECTS[kind]()
    src = write(ds, tmp_path / "in.dcm")
    report = deidentify_file(src, tmp_path / "out.dcm", _deid(profile))
    assert report.status == "ok", report.errors
    assert leaks(dcmread(tmp_path / "out.dcm"), planted) == set()


def test_basic_profile_replaces_the_content_tree_with_one_dummy_item() -> None:
    out = _run("basic", structured_report()[0])
    assert len(out.ContentSequence) == 1
    item = out.ContentSequence[0]
    assert (item.RelationshipType, item.ValueType, item.TextValue) == (
        "CONTAINS",
        "TEXT",
        "ANONYMIZED",
    )
    assert item.ConceptNameCodeSequence[0].CodeValue == "121106"
    assert "ContentSequence" not in item
    assert not any(CLINICAL.lower() in squash(t) for t in output_texts(out))


def test_clean_structured_content_keeps_the_tree_and_cleans_every_item() -> None:
    ds, _ = structured_report()
    out = _run("clean_structured_content", ds)
    text = out.ContentSequence[0]
    assert CLINICAL in text.TextValue  # the findings survive, the PHI does not
    deeper, uid = text.ContentSequence
    assert "Seen with" in deeper.TextValue and "Mueller" not in deeper.TextValue
    person, date, when = deeper.ContentSequence
    assert str(person.PersonName) == "ANONYMOUS"
    assert date.Date == "19000101" and when.DateTime.startswith("1900")
    assert uid.UID.startswith("2.25.")
    assert out.ContentSequence[1].ConceptCodeSequence[0].CodeMeaning == "Normal"


def test_clean_structured_content_text_loses_phone_names_and_addresses() -> None:
    out = _run("clean_structured_content", structured_report()[0])
    text = out.ContentSequence[0].TextValue
    for gone in ("7946", "Lukaszewicz", "Kowalczyk", "Elm Street", "example.org", "17/07/1961"):
        assert gone not in text, gone
    assert text.startswith("Call Dr")


def test_basic_profile_replaces_an_encapsulated_pdf_with_a_dummy_pdf() -> None:
    out = _run("basic", encapsulated_pdf()[0])
    data = document_bytes(out)
    assert data.startswith(b"%PDF-") and _pdf_text(data).strip() == "ANONYMIZED"
    assert out.EncapsulatedDocumentLength == len(data)
    assert out.DocumentTitle == "Referral letter for , DOB"  # typed without accents: found


def test_clean_documents_rewrites_the_pdf_from_its_cleaned_text() -> None:
    out = _run("clean_documents", encapsulated_pdf()[0])
    data = document_bytes(out)
    text = _pdf_text(data)
    assert CLINICAL in text and "Dear Dr" in text
    assert "Lukaszewicz" not in text and "+44" not in text and "Kowalczyk" not in text
    reader = PdfReader(io.BytesIO(data))
    assert not reader.metadata  # the original Info (author) does not survive
    assert out.EncapsulatedDocumentLength == len(data)


@pytest.mark.parametrize(
    "payload",
    [b"%PDF-1.4\nnot really a pdf", flate_pdf("x", "y")[:120], b"%PDF-1.4\n" + b"\x00" * 64],
)
def test_a_pdf_whose_text_cannot_be_read_gets_the_dummy(payload: bytes) -> None:
    ds, _ = encapsulated_pdf()
    ds.EncapsulatedDocument = payload + b"\x00" * (len(payload) % 2)
    out = _run("clean_documents", ds)
    assert _pdf_text(document_bytes(out)).strip() == "ANONYMIZED"


def test_text_documents_are_cleaned_and_other_kinds_get_a_dummy() -> None:
    ds, _ = encapsulated_pdf()
    ds.MIMETypeOfEncapsulatedDocument = "text/plain"
    ds.EncapsulatedDocument = b"Letter for Jurgen Muller, tel +44 20 7946 0958. Fine."
    out = _run("clean_documents", ds)
    assert document_bytes(out).decode().strip() == "Letter for , tel . Fine."
    ds.MIMETypeOfEncapsulatedDocument = "text/XML"
    ds.EncapsulatedDocument = b"<ClinicalDocument>Jurgen Muller</ClinicalDocument>"
    assert document_bytes(_run("clean_documents", ds)) == b"ANONYMIZED"
    ds.MIMETypeOfEncapsulatedDocument = "model/stl"
    ds.EncapsulatedDocument = b"solid Jurgen Muller\nendsolid\n"
    assert document_bytes(_run("clean_documents", ds)) == b"\x00\x00"


def test_kept_documents_are_still_read_by_verify() -> None:
    deid = _deid(DeidProfile(keep_tags=("EncapsulatedDocument",)))
    result = deid.deidentify(encapsulated_pdf()[0])
    check = deid.verify(result.dataset, result.phi_values, original_uids=result.original_uids)
    kinds = {f.kind for f in check.findings if f.path == "(0042,0011)"}
    assert "phi" in kinds and "pattern:phone" in kinds  # compressed: found only in the text


def test_verify_holds_an_unreadable_pdf() -> None:
    deid = _deid("basic")
    result = deid.deidentify(encapsulated_pdf()[0])
    result.dataset.EncapsulatedDocument = b"%PDF-1.4 truncated"
    check = deid.verify(result.dataset, result.phi_values)
    assert [f.kind for f in check.findings] == ["unscannable"]


def test_verify_finds_folded_names_and_patterns_in_free_text_only() -> None:
    deid = _deid("clean_descriptors")
    result = deid.deidentify(encapsulated_pdf()[0])
    out = result.dataset
    out.StudyDescription = "for JURGEN MULLER-LUDENSCHEIDT, call 020 7946 0123"  # cleaned: C
    out.InstitutionAddress = "Call 020 7946 0123"  # removed by the profile: not free text
    check = deid.verify(out, result.phi_values)
    found = {(f.path, f.kind) for f in check.findings}
    assert ("(0008,1030)", "phi") in found and ("(0008,1030)", "pattern:phone") in found
    assert not any(path == "(0008,0081)" for path, _ in found)
    for finding in check.findings:
        assert "7946" not in str(finding.as_dict()) and "MULLER" not in str(finding.as_dict())


def test_kept_elements_are_not_searched_for_patterns() -> None:
    deid = _deid(DeidProfile(options=("retain_institution_identity",)))
    ds = make_ds()
    ds.PatientAddress = "3 Oak Lane, Springfield"  # the same town: its token is kept vocabulary
    ds.InstitutionAddress = "1 Hospital Road, Springfield, tel 020 7946 0123"
    result = deid.deidentify(ds)
    assert result.dataset.InstitutionAddress == ds.InstitutionAddress
    check = deid.verify(result.dataset, result.phi_values, original_uids=result.original_uids)
    assert check.passed, check.findings


def test_free_text_step_is_timed_separately() -> None:
    deid = _deid("all_clean")
    result = deid.deidentify(structured_report()[0])
    assert 0 < result.free_text_seconds < 5
    assert result.actions["C_cleaned"] >= 3


def test_header_spellings_found_in_a_document_title_under_the_basic_profile() -> None:
    ds, _ = encapsulated_pdf()
    ds.DocumentTitle = "Brief: Juergen MUELLER-LUEDENSCHEIDT / Lukaszewicz"
    ds.ReferringPhysicianName = "Łukaszewicz^Tomasz"
    assert str(ds.PatientName) == PATIENT
    out = _run("basic", ds)
    assert out.DocumentTitle == "Brief: /"
