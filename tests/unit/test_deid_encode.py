"""The fast Part 10 encoder writes what save_as writes; the PHI prefilter changes no result."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from deid_helpers import deidentifier, make_ds, write
from pydicom.dataset import Dataset, FileDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dxai.actors.deid.encode import _fast_syntax, encode
from dxai.actors.deid.fileio import read_dicom
from dxai.actors.deid.phi import PhiMatcher


def _save_as(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _read_back(tmp_path: Path, ds: Dataset, syntax: str, charset: str) -> FileDataset:
    ds.file_meta.TransferSyntaxUID = syntax
    ds.SpecificCharacterSet = charset
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = "1.2.3.4.5"
    outer.ReferencedImageSequence = Sequence([Dataset()])
    ds.ReferencedStudySequence = Sequence([outer])
    ds.ReferencedStudySequence.is_undefined_length = True
    ds.ReferencedStudySequence[0].is_undefined_length_sequence_item = True
    ds.LongCodeValue = "x" * 70000  # UC: 32-bit length even in explicit VR
    return read_dicom(write(ds, tmp_path / "in.dcm"))


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("charset", ["ISO_IR 100", "ISO_IR 192"])
def test_encode_matches_save_as(tmp_path: Path, syntax: str, charset: str) -> None:
    source = make_ds()
    source.PatientName = "MÜLLER^JÜRGEN"
    read = _read_back(tmp_path, source, syntax, charset)
    assert _fast_syntax(read) == syntax  # the fast path applies, not the save_as fallback
    assert encode(read) == _save_as(read)  # unchanged: raw elements only
    deidentifier("clean_descriptors").deidentify(read, in_place=True)
    read.StudyDescription = "Schädel"  # non-ASCII text: left to pydicom
    read.add_new(0x00180015, "CS", ["CHEST", "HEAD"])  # new multi-valued value
    assert encode(read) == _save_as(read)


def test_encode_falls_back_for_datasets_built_in_memory() -> None:
    ds = make_ds()
    ds.preamble = b"\x00" * 128
    assert _fast_syntax(ds) is None
    assert encode(ds) == _save_as(ds)


def test_prefiltered_matcher_finds_the_same() -> None:
    tokens = {"DOE", "JOHNATHAN", "DOE JOHNATHAN", "19700315", "ANN", "Straße", "Łódź"}
    texts = ["seen by Doe^Johnathan", "SCANNER", "born 19700315", "ann", "", "STRASSE", "Ünïcode"]
    haystack = "\x00".join(texts)
    narrowed = PhiMatcher.for_text(tokens, haystack)
    full = PhiMatcher(tokens)
    assert set(narrowed.tokens) == set(full.tokens) - {"Łódź"}  # ß folds to ss: Straße found
    for text in texts:
        assert narrowed.find(text) == full.find(text)
        assert narrowed.scrub(text) == full.scrub(text)
    # "İ" (whose lower() is two characters) folds one for one: positions still index the text
    assert PhiMatcher.for_text(tokens, "İ" + haystack).tokens == narrowed.tokens
    assert full.find("İ Doe ß") == ["Doe"]
    assert PhiMatcher({"İSTANBUL"}).find("from Istanbul.") == ["Istanbul"]
