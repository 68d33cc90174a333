"""Hard objects for the free-text de-identification tests, each with the PHI it carries.

Every builder returns ``(dataset, planted)``: ``planted`` lists the PHI strings of the object
as the header writes them and as free text types them (without accents, in other orders, in
other spellings), for :func:`deid_leakcheck.leaks` to look for in the output.
"""

from __future__ import annotations

import zlib

from deid_helpers import make_ds
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import (
    BasicTextSRStorage,
    EncapsulatedPDFStorage,
    EnhancedMRImageStorage,
    generate_uid,
)

#: The header of every object (UTF-8 unless the builder says otherwise).
PATIENT = "Müller-Lüdenscheidt^Jürgen"
REFERRER = "Łukaszewicz^Tomasz"
PATIENT_ID = "PID4471193"
ACCESSION = "ACC7781234"
BIRTH_DATE = "19610717"
STUDY_DATE = "20240102"
PHONE = "+44 20 7946 0958"
ADDRESS = "12 Elm Street, Springfield IL 62704"

#: Free text as a clerk types it: no accents, other orders and spellings, PHI no header holds.
FINDINGS = (
    "Call Dr Tomasz Lukaszewicz at +44 20 7946 0958 about MULLER-LUDENSCHEIDT, Jurgen "
    "(Juergen Mueller-Luedenscheidt), DOB 17/07/1961, MRN PID4471193, Acc ACC7781234. "
    "Exam 2 Jan 2024 at 10:15. Contact jurgen.m@example.org or "
    "https://portal.example.org/p/4471193. Lives at 12 Elm Street, Springfield IL 62704. "
    "Reported by Dr. Anna Kowalczyk, phone 020 7946 0123. "
    "No acute intracranial abnormality."
)
CLINICAL = "No acute intracranial abnormality"

PLANTED = (
    "Müller-Lüdenscheidt",
    "Müller",
    "Lüdenscheidt",
    "Jürgen",
    "Łukaszewicz",
    "Tomasz",
    PATIENT_ID,
    ACCESSION,
    BIRTH_DATE,
    "17/07/1961",
    STUDY_DATE,
    "2 Jan 2024",
    PHONE,
    "020 7946 0123",
    "jurgen.m@example.org",
    "portal.example.org",
    "12 Elm Street",
    "Springfield IL",
    "62704",
    "Kowalczyk",
)


def _header(ds: Dataset) -> Dataset:
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = PATIENT
    ds.ReferringPhysicianName = REFERRER
    ds.PatientID = PATIENT_ID
    ds.OtherPatientIDs = "MRN" + PATIENT_ID
    ds.AccessionNumber = ACCESSION
    ds.PatientBirthDate = BIRTH_DATE
    ds.PatientAddress = ADDRESS
    ds.PatientTelephoneNumbers = PHONE
    for keyword in ("StudyDate", "SeriesDate", "ContentDate", "AcquisitionDate"):
        setattr(ds, keyword, STUDY_DATE)
    ds.StudyDescription = "CT for Jurgen Muller-Ludenscheidt"
    return ds


def _code(value: str, scheme: str, meaning: str) -> Sequence:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return Sequence([item])


def _item(relationship: str, value_type: str, concept: tuple[str, str, str]) -> Dataset:
    item = Dataset()
    item.RelationshipType = relationship
    item.ValueType = value_type
    item.ConceptNameCodeSequence = _code(*concept)
    return item


def _nested_content() -> Dataset:
    """A TEXT item with a nested tree: more text, a person, a date, a date-time, a UID."""
    text = _item("CONTAINS", "TEXT", ("121071", "DCM", "Finding"))
    text.TextValue = FINDINGS
    deeper = _item("INFERRED FROM", "TEXT", ("121071", "DCM", "Finding"))
    deeper.TextValue = "Seen with Juergen Mueller on 02/01/2024; referrer LUKASZEWICZ T."
    person = _item("HAS OBS CONTEXT", "PNAME", ("121008", "DCM", "Person Observer Name"))
    person.PersonName = REFERRER
    date = _item("HAS PROPERTIES", "DATE", ("21112-8", "LN", "Birth date"))
    date.Date = BIRTH_DATE
    when = _item("HAS PROPERTIES", "DATETIME", ("111526", "DCM", "DateTime Started"))
    when.DateTime = STUDY_DATE + "101500"
    uid = _item("HAS PROPERTIES", "UIDREF", ("121232", "DCM", "Source series"))
    uid.UID = "1.2.826.0.1.3680043.99.5.6"
    deeper.ContentSequence = Sequence([person, date, when])
    text.ContentSequence = Sequence([deeper, uid])
    return text


def structured_report() -> tuple[Dataset, tuple[str, ...]]:
    """A Basic Text SR whose findings (nested two levels deep) mention the patient."""
    ds = _header(make_ds(BasicTextSRStorage))
    ds.Modality = "SR"
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    ds.ConceptNameCodeSequence = _code("18748-4", "LN", "Diagnostic imaging report")
    code = _item("CONTAINS", "CODE", ("121071", "DCM", "Finding"))
    code.ConceptCodeSequence = _code("RID3711", "RADLEX", "Normal")
    ds.ContentSequence = Sequence([_nested_content(), code])
    observer = Dataset()
    observer.VerifyingObserverName = REFERRER
    observer.VerifyingOrganization = "Sankt Hedwig Klinikum"
    observer.VerificationDateTime = STUDY_DATE + "120000"
    ds.VerifyingObserverSequence = Sequence([observer])
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "VERIFIED"
    return ds, PLANTED


def flate_pdf(text: str, author: str) -> bytes:
    """A PDF whose page text is Flate-compressed and whose Info names an author.

    Neither the text nor (once compressed) its words are visible in the raw bytes: only a
    reader that decodes the content stream sees them.
    """
    lines = [line.replace("(", "[").replace(")", "]") for line in text.split(". ")]
    ops = ["BT /F1 9 Tf 11 TL 40 800 Td"] + [f"({line}) Tj T*" for line in lines] + ["ET"]
    stream = zlib.compress("\n".join(ops).encode("latin-1"))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] "
        b"/Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
        b"<< /Length %d /Filter /FlateDecode >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Courier >>",
        b"<< /Author (" + author.encode("latin-1") + b") /Title (Referral) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R /Info 6 0 R >>\n" % (len(objects) + 1)
    return out + b"startxref\n%d\n%%%%EOF\n" % xref


def encapsulated_pdf() -> tuple[Dataset, tuple[str, ...]]:
    """An Encapsulated PDF referral letter; its title types the name without accents."""
    ds = _header(make_ds(EncapsulatedPDFStorage))
    ds.Modality = "DOC"
    ds.DocumentTitle = "Referral letter for Jurgen Muller-Ludenscheidt, DOB 17.07.1961"
    ds.MIMETypeOfEncapsulatedDocument = "application/pdf"
    ds.BurnedInAnnotation = "YES"
    ds.ConceptNameCodeSequence = _code("11488-4", "LN", "Consult note")
    pdf = flate_pdf("Dear Dr Lukaszewicz. " + FINDINGS, "Dr Tomasz Lukaszewicz")
    ds.EncapsulatedDocument = pdf + b"\x00" * (len(pdf) % 2)
    ds.EncapsulatedDocumentLength = len(pdf)
    return ds, PLANTED


def _frame(index: int) -> Dataset:
    content = Dataset()
    content.FrameAcquisitionDateTime = f"{STUDY_DATE}10150{index}.000000"
    content.FrameReferenceDateTime = f"{STUDY_DATE}101500"
    content.FrameAcquisitionDuration = 12.5
    content.StackID = "1"
    content.InStackPositionNumber = index + 1
    content.FrameComments = f"Muller J moved (frame {index}) 02.01.2024. {FINDINGS}"
    content.FrameLabel = "Jurgen 2024-01-02"
    excluded = Dataset()
    excluded.add_new(0x00189804, "DT", f"{STUDY_DATE}101700")  # Exclusion Start DateTime
    excluded.add_new(0x00189805, "FD", 1.0)  # Exclusion Duration
    frame = Dataset()
    frame.FrameContentSequence = Sequence([content])
    frame.add_new(0x00189803, "SQ", Sequence([excluded]))  # Excluded Intervals Sequence
    return frame


def enhanced_mr() -> tuple[Dataset, tuple[str, ...]]:
    """An Enhanced MR with dates, names and a phone number deep in its functional groups."""
    ds = _header(make_ds(EnhancedMRImageStorage))
    ds.Modality = "MR"
    ds.AcquisitionDateTime = STUDY_DATE + "101500"
    ds.PerFrameFunctionalGroupsSequence = Sequence([_frame(i) for i in range(3)])
    shared = Dataset()
    timing = Dataset()
    timing.RepetitionTime, timing.FlipAngle = 500.0, 90.0
    shared.MRTimingAndRelatedParametersSequence = Sequence([timing])
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    ds.NumberOfFrames = 3
    return ds, (*PLANTED, "02.01.2024", "2024-01-02")


def overlay() -> tuple[Dataset, tuple[str, ...]]:
    """A CT with an overlay whose label, description and comments name the patient."""
    ds = _header(make_ds())
    for group in (0x6000, 0x6002):
        ds.add_new(group << 16 | 0x0010, "US", 4)  # Overlay Rows
        ds.add_new(group << 16 | 0x0011, "US", 4)  # Overlay Columns
        ds.add_new(group << 16 | 0x0040, "CS", "G")  # Overlay Type
        ds.add_new(group << 16 | 0x0050, "SS", [1, 1])  # Overlay Origin
        ds.add_new(group << 16 | 0x0100, "US", 1)  # Overlay Bits Allocated
        ds.add_new(group << 16 | 0x0102, "US", 0)  # Overlay Bit Position
        ds.add_new(group << 16 | 0x3000, "OW", b"\xff\x00")  # Overlay Data
        ds.add_new(group << 16 | 0x0022, "LO", "Annotated for Jurgen Muller 17.07.1961")
        ds.add_new(group << 16 | 0x1500, "LO", "MULLER-LUDENSCHEIDT J")  # Overlay Label
        ds.add_new(group << 16 | 0x4000, "LT", "Dr Lukaszewicz: " + FINDINGS)  # Comments
    return ds, PLANTED


JAPANESE_PATIENT = "Yamada^Tarou=山田^太郎=やまだ^たろう"
JAPANESE_REFERRER = "Suzuki^Ichiro=鈴木^一郎=すずき^いちろう"
JAPANESE_PLANTED = (
    "Yamada",
    "Tarou",
    "山田",
    "太郎",
    "やまだ",
    "たろう",
    "Suzuki",
    "鈴木",
    "一郎",
    "1961年7月17日",
    "03-1234-5678",
    BIRTH_DATE,
    PATIENT_ID,
)


def japanese() -> tuple[Dataset, tuple[str, ...]]:
    """ISO 2022 IR 87 (JIS X 0208) names; free text writes them without spaces or in romaji."""
    ds = make_ds()
    ds.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    ds.PatientName = JAPANESE_PATIENT
    ds.ReferringPhysicianName = JAPANESE_REFERRER
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = BIRTH_DATE
    ds.StudyDescription = "山田太郎様 頭部CT 1961年7月17日生"
    ds.ImageComments = "YAMADA TAROU, 鈴木一郎先生より紹介。電話03-1234-5678"
    ds.Manufacturer = "ACME やまだ たろう"  # unlisted LO: cleaned (C) under every profile
    return ds, JAPANESE_PLANTED


def utf8_names() -> tuple[Dataset, tuple[str, ...]]:
    """ISO_IR 192: Polish, German and Danish names, typed in text the way a clerk types them."""
    ds = make_ds()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = "Łukaszewicz^Zofia"
    ds.ReferringPhysicianName = "Müller-Lüdenscheidt^Jürgen"
    ds.OperatorsName = "Ørsted^Søren"
    ds.StudyDescription = "CT for Zofia Lukaszewicz, ref Dr Juergen Mueller-Luedenscheidt"
    ds.ImageComments = "LUKASZEWICZ ZOFIA / MULLER-LUDENSCHEIDT / op. Soeren Orsted"
    ds.Manufacturer = "ACME for Lukaszewicz"
    planted = ("Łukaszewicz", "Zofia", "Müller-Lüdenscheidt", "Jürgen", "Ørsted", "Søren")
    return ds, (*planted, "Orsted", "Soren")


def latin1_names() -> tuple[Dataset, tuple[str, ...]]:
    """ISO_IR 100: names and a street with ü, ø and ß; text without them."""
    ds = make_ds()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.OperatorsName = "Ørsted^Søren"
    ds.PatientAddress = "Lindenstraße 5, 58507 Lüdenscheid"
    ds.StudyDescription = "Juergen Mueller, Lindenstrasse 5, 58507 Ludenscheid"
    ds.ImageComments = "Technologist: Soren Orsted. Patient MULLER JURGEN"
    ds.Manufacturer = "ACME (Muller)"
    planted = ("Müller", "Jürgen", "Ørsted", "Søren", "Lindenstraße 5", "58507", "Lüdenscheid")
    return ds, planted


def unknown_private() -> tuple[Dataset, tuple[str, ...]]:
    """Private OB/UN/LO/SQ elements of an unknown creator (and one without a creator)."""
    ds = _header(make_ds())
    blob = f"PATIENT={PATIENT};TEL={PHONE};ADDR={ADDRESS}".encode()
    block = ds.private_block(0x0029, "ACME UNKNOWN 1.0", create=True)
    block.add_new(0x01, "OB", b"\x00\x01" + blob + b"\x00")
    block.add_new(0x02, "UN", "Łukaszewicz Tomasz".encode() + b"\x00")
    block.add_new(0x03, "LO", "Jurgen Muller")
    block.add_new(0x05, "LT", FINDINGS)
    inner = Dataset()
    inner.private_block(0x0029, "ACME UNKNOWN 1.0", create=True).add_new(0x01, "LO", ACCESSION)
    block.add_new(0x04, "SQ", Sequence([inner]))
    ds.add_new(0x00311001, "UN", PATIENT_ID.encode())  # no creator at all
    ref = ds.ReferencedImageSequence[0]
    ref.private_block(0x0029, "ACME UNKNOWN 1.0", create=True).add_new(0x01, "OB", blob)
    ds.SOPInstanceUID = generate_uid()
    return ds, PLANTED


OBJECTS = {
    "structured_report": structured_report,
    "encapsulated_pdf": encapsulated_pdf,
    "enhanced_mr": enhanced_mr,
    "overlay": overlay,
    "iso2022_ir87": japanese,
    "utf8_names": utf8_names,
    "latin1_names": latin1_names,
    "unknown_private": unknown_private,
}
