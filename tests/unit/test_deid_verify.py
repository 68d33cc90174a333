"""PHI collection, the verify pass, keyed pseudonyms and non-ASCII character sets."""

from __future__ import annotations

from pathlib import Path

from deid_helpers import KEY, SOP_UID, deidentifier, make_ds, write
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from dxai.actors.deid import verify
from dxai.actors.deid.phi import PhiCollector, PhiMatcher, token_hash, tokens_from_value
from dxai.actors.deid.pseudonym import Pseudonymizer
from dxai.actors.outbound import deidentify_file


def test_name_tokens_split_and_filtered() -> None:
    assert tokens_from_value("DOE^JOHN^^DR", "PN") == {
        "DOE",
        "JOHN",
        "DOE JOHN DR",
        "DOE JOHN",
        "JOHN DOE",  # name order: family and given both ways
    }
    assert tokens_from_value("AB", "LO") == set()
    assert tokens_from_value("1234", "LO") == set()  # short number
    assert tokens_from_value("ANONYMOUS", "PN") == set()


def test_kept_vocabulary_and_generated_values_are_not_tokens() -> None:
    collector = PhiCollector()
    collector.add("CT PE CHEST", "LO")
    collector.add("PE CHEST", "LO")
    collector.add("DXAI1234ABCD", "LO")
    collector.add("SMITH^ANNA", "PN")
    collector.keep("CT PE CHEST")
    collector.generated.append("DXAI1234ABCD")
    assert collector.final_tokens() == {"SMITH", "ANNA", "SMITH ANNA", "ANNA SMITH"}


def test_matcher_word_boundaries_and_case() -> None:
    matcher = PhiMatcher({"ANN", "DOE JOHN", "19700315"})
    assert matcher.find("SCANNER CHANNEL") == []
    assert matcher.find("seen by Ann today") == ["Ann"]
    assert matcher.find("doe^john") == ["doe^john"]
    assert matcher.find("born 19700315") == ["19700315"]
    assert matcher.find("id 119700315") == []
    assert matcher.scrub("Ann and doe john went") == "and went"


def test_matcher_ignores_accents() -> None:
    matcher = PhiMatcher({"MÜLLER", "Zoë"})
    assert matcher.find("seen by Dr Muller") == ["Muller"]
    assert matcher.find("zoe and müller") == ["müller", "zoe"]
    assert matcher.scrub("Zoe Muller went") == "went"


def test_date_tokens_cover_written_forms() -> None:
    tokens = tokens_from_value("20010705", "DA")
    assert {"20010705", "2001-07-05", "07/05/2001", "7/5/2001", "05-Jul-2001"} <= tokens
    assert {"Jul 5 2001", "05.07.01"} <= tokens
    assert tokens_from_value("20010705103000", "DT") >= {"2001-07-05", "5 Jul 2001"}
    matcher = PhiMatcher(tokens)
    assert matcher.find("exam of jul 5 2001") == ["jul 5 2001"]
    assert matcher.find("on 17/5/2001") == []


def test_verify_finds_phi_at_any_depth_private_and_bytes() -> None:
    ds = Dataset()
    ds.PatientComments = "all fine"
    item = Dataset()
    item.TextValue = "nested mention of Johnathan"
    ds.ContentSequence = Sequence([item])
    block = ds.private_block(0x0011, "VENDOR", create=True)
    block.add_new(0x01, "OB", b"\x00\x01JOHNATHAN\x00")
    ds.ReferencedSOPInstanceUID = SOP_UID
    result = verify(ds, {"JOHNATHAN"}, original_uids={SOP_UID})
    paths = {f.path for f in result.findings}
    assert "(0040,A730)[0]/(0040,A160)" in paths
    assert "(0011,1001)" in paths
    assert "(0008,1155)" in paths
    assert not result.passed
    for finding in result.findings:
        assert "JOHNATHAN" not in str(finding.as_dict()).upper()
        assert finding.token_hash.startswith("h:")
    assert token_hash("johnathan") == token_hash("JOHNATHAN")


def test_deidentified_output_passes_verify() -> None:
    deid = deidentifier("clean_descriptors")
    result = deid.deidentify(make_ds())
    assert {"DOE", "JOHNATHAN", "PID778899", "19700315", "MRN55443322"} <= result.phi_values
    check = deid.verify(result.dataset, result.phi_values, original_uids=result.original_uids)
    assert check.passed, check.findings
    assert SOP_UID in result.original_uids
    assert result.uid_map[SOP_UID] == result.dataset.SOPInstanceUID


def test_pseudonyms_are_keyed_and_stable() -> None:
    p = Pseudonymizer(KEY)
    assert p.patient_id("PID1") == p.patient_id("PID1") != p.patient_id("PID2")
    assert Pseudonymizer(b"x" * 32).patient_id("PID1") != p.patient_id("PID1")
    assert p.patient_name("PID1", "DOE^J").startswith("ANON^")
    assert p.patient_id("  ") == "DXAIANON"


def _non_ascii(tmp_path: Path, charset: str, name: str, desc: str) -> Dataset:
    ds = make_ds()
    ds.SpecificCharacterSet = charset
    ds.PatientName = name
    ds.StudyDescription = desc
    src = write(ds, tmp_path / f"in-{charset.replace(' ', '_')}.dcm")
    dst = tmp_path / "out" / src.name
    report = deidentify_file(src, dst, deidentifier("clean_descriptors"))
    assert report.status == "ok", report.errors
    return dcmread(dst)


def test_latin1_charset(tmp_path: Path) -> None:
    out = _non_ascii(tmp_path, "ISO_IR 100", "MÜLLER^JÜRGEN", "Schädel Müller Jürgen")
    assert out.StudyDescription == "Schädel"
    raw = (tmp_path / "out" / "in-ISO_IR_100.dcm").read_bytes()
    assert "MÜLLER".encode("latin-1") not in raw.upper()


def test_utf8_charset(tmp_path: Path) -> None:
    out = _non_ascii(tmp_path, "ISO_IR 192", "ИВАНОВ^ИВАН", "КТ головы Иванов")
    assert out.StudyDescription == "КТ головы"
    raw = (tmp_path / "out" / "in-ISO_IR_192.dcm").read_bytes()
    assert "ИВАНОВ".encode() not in raw
