"""The raw sequence reader collects what the parsed route collects; newer encoder fast paths."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from deid_helpers import deidentifier, make_ds, write
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from dxai.actors.deid.collect import _collect_items, collect
from dxai.actors.deid.context import Slot, WalkContext
from dxai.actors.deid.encode import encode
from dxai.actors.deid.fileio import read_dicom
from dxai.actors.deid.rawseq import sequence_texts
from dxai.actors.deid.values import elements_of, encodings_of
from dxai.actors.outbound import deidentify_file
from dxai.configs.atomic import _create_temp

SEQUENCE = 0x00081110  # ReferencedStudySequence


def _nested() -> Sequence:
    inner = Dataset()
    inner.PatientName = "DOE^JANE"
    inner.CodeMeaning = "not a token"  # coded entry: never collected
    inner.Modality = "CT"  # CS: never collected
    inner.add_new(0x00091010, "LO", "private text")  # private: never collected
    outer = Dataset()
    outer.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8"
    outer.StudyComments = "seen by Dr Who"
    outer.OperatorsName = "SMITH^ANN"
    outer.ReferencedImageSequence = Sequence([inner])
    private_sequence = Dataset()
    private_sequence.StudyDate = "20200101"
    outer.add_new(0x00091011, "SQ", Sequence([private_sequence]))
    return Sequence([outer, Dataset()])


def _read(tmp_path: Path, syntax: str, undefined_items: bool) -> Dataset:
    ds = make_ds()
    ds.file_meta.TransferSyntaxUID = syntax
    ds.ReferencedStudySequence = _nested()
    for item in ds.ReferencedStudySequence:
        item.is_undefined_length_sequence_item = undefined_items
    ds.ReferencedStudySequence[0].ReferencedImageSequence.is_undefined_length = undefined_items
    return read_dicom(write(ds, tmp_path / "in.dcm"))


def _context(ds: Dataset) -> WalkContext:
    return deidentifier()._context(ds)


@pytest.mark.parametrize("syntax", [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
@pytest.mark.parametrize("undefined_items", [False, True])
def test_raw_reader_collects_what_the_parsed_items_give(
    tmp_path: Path, syntax: str, undefined_items: bool
) -> None:
    ds = _read(tmp_path, syntax, undefined_items)
    elem = ds.get_item(BaseTag(SEQUENCE))
    assert isinstance(elem, RawDataElement) and elem.value is not None
    if syntax == ImplicitVRLittleEndian:  # a private element in an item: pydicom's job
        with pytest.raises(ValueError):
            sequence_texts(elem.value, elem.is_implicit_VR, encodings_of(ds))
        return
    raw = _context(ds)
    for text, vr in sequence_texts(elem.value, elem.is_implicit_VR, encodings_of(ds)):
        raw.collector.add(text, vr)
    parsed = _context(ds)
    _collect_items(ds[SEQUENCE].value, parsed)
    assert raw.collector.tokens == parsed.collector.tokens
    assert {"DOE", "JANE", "seen by Dr Who", "SMITH", "ANN"} <= raw.collector.tokens
    assert not {"not a token", "private text"} & raw.collector.tokens


@pytest.mark.parametrize(
    "data",
    [
        b"\xfe\xff\x00\xe0\x10\x00\x00\x00",  # an item longer than the value
        b"\xfe\xff\x00\xe0\x08\x00\x00\x00\x10\x00\x10\x00UN\x00\x00",  # UN: needs pydicom
        b"\xfe\xff\xdd\xe0\x00\x00\x00\x00",  # a sequence delimiter in a defined-length value
        b"\x10\x00\x10\x00",  # no item tag
    ],
)
def test_raw_reader_leaves_unusual_bytes_to_pydicom(data: bytes) -> None:
    with pytest.raises(ValueError):
        sequence_texts(data, False, ["iso8859"])


def test_removed_sequence_tokens_reach_verify(tmp_path: Path) -> None:
    ds = _read(tmp_path, ExplicitVRLittleEndian, undefined_items=False)
    ds.StudyDescription = "follow-up for Jane"  # cleaned with the tokens of the sequence
    src = write(ds, tmp_path / "src.dcm")
    report = deidentify_file(src, tmp_path / "out" / "o.dcm", deidentifier("clean_descriptors"))
    assert report.status == "ok", report.errors
    out = read_dicom(tmp_path / "out" / "o.dcm")
    assert SEQUENCE not in out
    assert "Jane" not in str(out.get("StudyDescription", ""))


def test_elements_of_matches_get_item() -> None:
    ds = make_ds()
    tags = list(ds.keys())
    assert [(tag, ds.get_item(tag)) for tag in tags] == elements_of(ds)


def test_encoder_fast_values_match_save_as(tmp_path: Path) -> None:
    ds = read_dicom(write(make_ds(), tmp_path / "in.dcm"))
    result = deidentifier().deidentify(ds, in_place=True)  # new PN, marking items
    out = result.dataset
    out.add_new(0x00280010, "US", 512)  # Rows
    out.add_new(0x00280106, "SS", -3)  # SmallestImagePixelValue
    out.add_new(0x00189311, "OB", b"\x01\x02\x03")  # odd length: padded
    out.add_new(0x00081048, "PN", "ROE^RICHARD^^DR")  # PhysiciansOfRecord
    buffer = io.BytesIO()
    out.save_as(buffer, enforce_file_format=True)
    assert encode(out) == buffer.getvalue()


def test_temporary_file_is_exclusive_and_cleaned(tmp_path: Path) -> None:
    dst = tmp_path / "o.dcm"
    fd, first = _create_temp(dst)
    os.close(fd)
    fd, second = _create_temp(dst)  # the predictable name is taken: a random one
    os.close(fd)
    assert first != second and first.parent == second.parent == tmp_path
    assert first.stat().st_mode & 0o777 == 0o600
    first.unlink()
    second.unlink()
    write(make_ds(), tmp_path / "in.dcm")
    report = deidentify_file(tmp_path / "in.dcm", dst, deidentifier())
    assert report.status == "ok", report.errors
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.dcm", "o.dcm"]


def test_slot_is_collected_from_raw_bytes(tmp_path: Path) -> None:
    ds = _read(tmp_path, ExplicitVRLittleEndian, undefined_items=True)
    tag = BaseTag(SEQUENCE)
    elem = ds.get_item(tag)
    assert isinstance(elem, RawDataElement)
    ctx = _context(ds)
    collect(Slot(ds, tag, elem, "SQ", encodings_of(ds)), ctx)
    assert isinstance(ds.get_item(tag), RawDataElement)  # not parsed by pydicom
    assert {"DOE", "JANE"} <= ctx.collector.tokens
