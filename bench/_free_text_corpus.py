"""A small corpus of free-text objects for bench/deid_headers.py: Basic Text SRs and PDFs.

Each object carries PHI in its header and in free text (SR findings, a referral letter PDF),
spelled the way a clerk types it, so that the free-text step of header de-identification
(cleaning text and documents) has real work.  Built in memory with pydicom, written as files.
"""

from __future__ import annotations

from pathlib import Path

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    EncapsulatedPDFStorage,
    ExplicitVRLittleEndian,
    generate_uid,
)

from dxai.actors.deid.pdf import write_text_pdf

FINDINGS = (
    "Call Dr Łukaszewicz at +44 20 7946 0958 about Jurgen Muller-Ludenscheidt "
    "(DOB 17/07/1961, MRN 5550123). Lives at 12 Elm Street, Springfield IL 62704. "
    "No acute intracranial abnormality. Small vessel disease, stable since 2023-05-01. "
)


def _base(sop_class: str, index: int) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = f"Müller-Lüdenscheidt^Jürgen{index}"
    ds.PatientID = f"PID{index:06d}"
    ds.PatientBirthDate = "19610717"
    ds.ReferringPhysicianName = "Łukaszewicz^Tomasz"
    ds.StudyDate = "20240102"
    ds.ContentDate = "20240102"
    ds.ContentTime = "101500"
    ds.AccessionNumber = f"ACC{index:06d}"
    ds.Modality = "SR" if sop_class == BasicTextSRStorage else "DOC"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def _text_item(text: str) -> Dataset:
    item = Dataset()
    item.RelationshipType = "CONTAINS"
    item.ValueType = "TEXT"
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121071", "DCM", "Finding"
    item.ConceptNameCodeSequence = Sequence([code])
    item.TextValue = text
    return item


def basic_text_sr(index: int) -> Dataset:
    """A Basic Text SR whose findings (three items, one nested) mention PHI."""
    ds = _base(BasicTextSRStorage, index)
    nested = _text_item(FINDINGS)
    top = _text_item(FINDINGS * 2)
    top.ContentSequence = Sequence([nested])
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ContentSequence = Sequence([top, _text_item("Reported by Dr. Anna van der Berg.")])
    return ds


def encapsulated_pdf(index: int) -> Dataset:
    """An Encapsulated PDF referral letter (two pages of text with PHI)."""
    ds = _base(EncapsulatedPDFStorage, index)
    ds.DocumentTitle = "Referral letter for Jurgen Muller-Ludenscheidt"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.BurnedInAnnotation = "YES"
    pdf = write_text_pdf("Dear Dr Lukaszewicz,\n" + FINDINGS * 20)
    ds.EncapsulatedDocument = pdf + (b"\x00" if len(pdf) % 2 else b"")
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds


def write_corpus(folder: Path, count: int) -> list[Path]:
    """``count`` SRs and ``count`` PDFs written under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in range(count):
        for kind, build in (("sr", basic_text_sr), ("pdf", encapsulated_pdf)):
            path = folder / f"{kind}-{index}.dcm"
            build(index).save_as(path, enforce_file_format=True)
            paths.append(path)
    return paths
