"""The stronger PHI decision: field labels (and the lines their values go on over), dates, times
and ages in every spelling, names with initials, the allow list under ``redact_all_text``, and the
default text mode per modality, SOP class and BurnedInAnnotation flag."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.outbound.pixel_step import PixelInput, PixelStep
from dxai.actors.pixels.ocr import Line, decide, decide_images
from dxai.actors.pixels.phi import (
    build_terms,
    compile_allow,
    label_values,
    legible_phi,
    pattern_hits,
    phi_spans,
)
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig

NOTHING = build_terms([])  # a header that holds none of the text on the image
ALLOW = compile_allow()


def _covered(text: str, spans: list[tuple[int, int, str]], start: int = 0) -> bool:
    """Every non-space character of ``text[start:]`` lies in a span."""
    return all(
        any(s <= i < e for s, e, _ in spans) for i in range(start, len(text)) if text[i] != " "
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("Name: SEXTON CARMEN", "SEXTON CARMEN"),
        ("Patient ID:3209648408", "3209648408"),
        ("Pt: Jane Roe", "Jane Roe"),
        ("DOB 1950", "1950"),
        ("Born: 3rd of May", "3rd of May"),
        ("Age: 57", "57"),
        ("Sex: F", "F"),
        ("MRN 55123", "55123"),
        ("Acc# 77812", "77812"),
        ("Accession: X1", "X1"),
        ("Study Date: 2019 jul 11", "2019 jul 11"),
        ("Exam Date: tuesday", "tuesday"),
        ("Institution Name: Holland Memorial", "Holland Memorial"),
        ("Hospital: St Elsewhere", "St Elsewhere"),
        ("Ref. Physician: Dr Who", "Dr Who"),
        ("Referring: Springfield Clinic", "Springfield Clinic"),
        ("Operator: KL", "KL"),
        ("Tech: JS", "JS"),
        ("Technologist: Pat", "Pat"),
        ("Sonographer: AB", "AB"),
        ("Agc: 66", "66"),  # OCR read one letter of the label wrong: the colon still says label
        ("ent ID\uff1a6774825273", "6774825273"),  # a truncated label, a full-width colon
        # small print read without its spaces, or with its colon read as a letter
        ("InstitutionNameFrancisTodd and Boyer", "FrancisTodd and Boyer"),
        ("PatientID:6774825273", "6774825273"),
        ("Namei KAUFMAN SCOTT", "KAUFMAN SCOTT"),
        ("Study Datei2013 Sep11", "2013 Sep11"),
        ("D0B: 01/01/1970", "01/01/1970"),
    ],
)
def test_value_after_a_label_is_phi_whatever_the_header_says(text: str, value: str) -> None:
    labels = label_values(text)
    assert [text[lv.value_start : lv.value_end] for lv in labels][-1:] == [value]
    spans = phi_spans(text, NOTHING)
    assert _covered(text, spans, text.index(value)), text


@pytest.mark.parametrize(
    "text", ["Date", "5 cm Tech AB", "Se 2 Im 14", "Liver", "Gen OB", "kVp 120 mAs 250", "Mail 5"]
)
def test_no_label_no_value(text: str) -> None:
    """A label word alone, or a weak label inside a line without a colon, marks nothing."""
    assert phi_spans(text, NOTHING) == []


def test_a_label_starting_a_fragment_needs_no_colon() -> None:
    text = "5cm Tech AB"  # two fragments joined: "5cm" and "Tech AB"
    assert phi_spans(text, NOTHING) == []
    spans = phi_spans(text, NOTHING, starts=(0, 4))
    assert _covered(text, spans, 4) and not any(s < 3 for s, _, _ in spans)


def _line(x0: int, y0: int, text: str, char_w: int = 6, height: int = 14) -> Line:
    steps = len(text)
    spans = tuple((i / steps, (i + 1) / steps) for i in range(steps))
    box = Box(x0, y0, x0 + char_w * len(text), y0 + height)
    return Line(box, Recognition(text, 0.95, spans))


def _filled(line: Line, boxes: list[Box]) -> bool:
    return any(line.box.intersection(b) * 2 >= line.box.area for b in boxes)


def test_a_value_goes_on_over_the_lines_below_it() -> None:
    """A four-line institution name: the lines under the value, at its left edge, are PHI; a
    marker there, a line at the label's edge and a line far below are not."""
    first = _line(300, 410, "Institution Name: Nielsen, Jimenez")
    value_x = 300 + 6 * len("Institution Name: ")
    more = [_line(value_x, 425, "and Aguilar"), _line(value_x, 440, "Community")]
    last = _line(value_x - 1, 455, "Hospital")
    marker = _line(value_x, 470, "Zoom 1.5x")
    at_label = _line(300, 470, "Liver")
    far = _line(value_x, 600, "Kidney")
    lines = [first, *more, last, marker, at_label, far]
    boxes = [p.box for p in decide(lines, NOTHING, False, ALLOW)]
    assert all(_filled(n, boxes) for n in (first, *more, last))
    assert not any(_filled(n, boxes) for n in (marker, at_label, far))


def test_a_label_ending_its_line_takes_the_line_below_at_its_edge() -> None:
    label = _line(100, 50, "Referring Physician:")
    below = _line(100, 65, "Springfield Clinic")
    next_label = _line(100, 80, "Age: 40")
    boxes = [p.box for p in decide([label, below, next_label], NOTHING, False, ALLOW)]
    assert _filled(below, boxes) and _filled(next_label, boxes)
    lonely = _line(100, 50, "Referring Physician")  # no colon: no value to look for below
    assert not decide([lonely, below], NOTHING, False, ALLOW)


@pytest.mark.parametrize(
    "text",
    [
        "2008 Jan 06",
        "2008-JAN-6",
        "1999 Sep23",
        "06-Jan-2008",
        "6 January 08",
        "06JAN2008",
        "Jan 6, 2008",
        "January 6th 2008",
        "06.01.2008",
        "2008/01/06",
        "20080106",
        "6/1/08",
        "14:32",
        "2:56:22 PM",
        "8:48:26 a.m.",
        "2: 09: 04",  # a clock time on an ultrasound screen as PP-OCR reads it
        "57Y",
        "057Y",
        "Age 57",
        "Age:57",
        "57 yrs",
        "57 y/o",
    ],
)
def test_dates_times_and_ages_are_phi_by_pattern(text: str) -> None:
    assert pattern_hits(text), text
    assert _covered(text, phi_spans(text, NOTHING)), text


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("MRNI23456", "MRNI23456"),  # 1 read as I
        ("ID 77345Z1", "77345Z1"),  # 2 read as Z
        ("DOEJOHN IDMAN123a55", "MAN123a55"),  # MRN123456 in 8-px print, glued to its label
    ],
)
def test_identifiers_misread_by_ocr_are_phi_by_pattern(text: str, number: str) -> None:
    assert any(text[s:e].endswith(number) for s, e, _ in pattern_hits(text)), text


@pytest.mark.parametrize(
    "text",
    [
        "W:400 L:40",
        "1.5T",
        "TIS 0.4",
        "1/10",
        "C5-1",
        "Se 2 Im 14",
        "kVp 120",
        "5 cm",
        "SOLID",
        "BASSOON",
        "Se 12345 Im 3",
        "1.2.840.10008",
    ],
)
def test_markers_are_no_date_time_or_age(text: str) -> None:
    assert pattern_hits(text) == []


NAMES = build_terms(["SMITH^JOHN", "JONES^MARY^R"])


@pytest.mark.parametrize(
    "text",
    ["J. Smith", "J Smith", "Smith J", "SMITH, J.", "SMITH, JOHN", "John Smith", "SMITH JOHN M"],
)
def test_names_with_initials_in_any_order(text: str) -> None:
    spans = phi_spans(text, NAMES)
    assert _covered(text, spans), (text, spans)


def test_a_bare_l_or_r_next_to_a_name_is_laterality() -> None:
    assert phi_spans("Jones R", NAMES) == [(0, 5, "name")]  # R: a marker on the same line
    assert _covered("Jones R.", phi_spans("Jones R.", NAMES))  # R.: her middle initial
    assert _covered("M. R. Jones", phi_spans("M. R. Jones", NAMES))


@pytest.mark.parametrize(
    "text",
    [
        "L",
        "R",
        "AP",
        "PA",
        "LAT",
        "kVp 120",
        "120 kVp",
        "mAs 250",
        "5 cm",
        "10mm",
        "D 12.0cm",
        "5MHz",
        "Gain 52",
        "Gn 52",
        "FR 30Hz",
        "TIS 0.4",
        "TIS: 0.5",
        "MI 1.2",
        "->",
        "W:400 L:40",
        "C5-1",
        "1/10",
        "ERECT",
        "W:400L:40",  # OCR dropped the spaces between markers
        "MI1.1TIS0.3",
        "Zo0m 1.5x",  # and read an O as 0
    ],
)
def test_markers_are_kept_under_redact_all_text(text: str) -> None:
    assert phi_spans(text, NOTHING, redact_all=True, allow=ALLOW) == [], text


@pytest.mark.parametrize("text", ["AC", "HARP", "CORMAG", "A1234", "Springfield Clinic", "57M"])
def test_other_text_is_redacted_under_redact_all_text(text: str) -> None:
    """Initials, and words a marker list could spell (H+A+R+P, COR+MAG), are not markers."""
    assert _covered(text, phi_spans(text, NOTHING, redact_all=True, allow=ALLOW)), text


def test_a_marker_glued_to_a_name_is_kept_the_name_is_not() -> None:
    terms = build_terms(["DOE^JOHN"])
    assert phi_spans("JohnDoe5cm", terms, redact_all=True, allow=ALLOW) == [(0, 7, "phrase")]


def test_text_read_again_after_a_fill() -> None:
    """Under redact_all_text, what a fill leaves is PHI only when it resembles what was filled."""
    assert legible_phi("NS 0.5", NOTHING, True, ALLOW, before="SIEMENS 0.5")
    assert not legible_phi("TH!", NOTHING, True, ALLOW, before="THI")
    assert not legible_phi("P0dR MHz", NOTHING, True, ALLOW, before="H4.00 MHz")
    assert legible_phi("SMITH", NAMES, False, ALLOW, before="SMITH JOHN")  # header evidence


def test_projection_garbage_over_a_kept_marker_is_not_redacted_all() -> None:
    """A cine loop's max projection superimposes its frame counters: unreadable, not PHI."""
    counter = _line(275, 203, "1/10")
    projected = Line(Box(245, 182, 320, 213), Recognition("\u5df40", 0.8, ((0, 0.5), (0.5, 1))))
    initials = Line(Box(10, 10, 40, 24), Recognition("AC", 0.9, ((0, 0.5), (0.5, 1))))
    found = decide_images([[counter], [projected, initials]], NOTHING, True, ALLOW)
    assert [p.box for p in found] == [initials.box]


@pytest.mark.parametrize("modality", ["US", "SC", "XA", "XC", "ES", "OT", "DOC", "us"])
def test_screen_and_capture_modalities_redact_all_text_by_default(modality: str) -> None:
    assert PixelPolicyConfig().text_mode(modality, "") == "redact_all_text"


@pytest.mark.parametrize(
    "sop_class",
    [
        "1.2.840.10008.5.1.4.1.1.7",
        "1.2.840.10008.5.1.4.1.1.7.1",
        "1.2.840.10008.5.1.4.1.1.7.2",
        "1.2.840.10008.5.1.4.1.1.7.3",
        "1.2.840.10008.5.1.4.1.1.7.4",
    ],
)
def test_secondary_capture_classes_redact_all_text_by_default(sop_class: str) -> None:
    assert PixelPolicyConfig().text_mode("CT", sop_class) == "redact_all_text"


def test_burned_in_annotation_yes_redacts_all_text() -> None:
    policy = PixelPolicyConfig()
    assert policy.text_mode("CT", uid.CTImageStorage) == "match_phi"
    assert policy.text_mode("CT", uid.CTImageStorage, burned_in=True) == "redact_all_text"
    off = PixelPolicyConfig(burned_in_mode=None)
    assert off.text_mode("CT", uid.CTImageStorage, burned_in=True) == "match_phi"


class _Detector:
    def detect(self, image: UInt8Array) -> list[Box]:
        ys, xs = np.nonzero(image[..., 0] > 200)
        return [Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]


class _Reads:
    """Reads a sonographer's initials, which no header attribute holds."""

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition("JS", 0.99, ((0.0, 0.5), (0.5, 1.0))) for _ in crops]


def _ct(burned_in: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName, ds.BurnedInAnnotation = "CT", "DOE^JOHN", burned_in
    arr = np.full((64, 96), 100, dtype=np.uint16)
    arr[10:20, 10:60] = 4000
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 96, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 16, 12
    ds.HighBit, ds.PixelRepresentation, ds.PixelData = 11, 0, arr.tobytes()
    return ds


def test_the_pixel_step_passes_the_original_burned_in_flag() -> None:
    """The flag of the ORIGINAL header decides, whatever the de-identified dataset says."""
    redactor = PixelRedactor(PixelPolicyConfig(), _Detector(), _Reads())
    step = PixelStep(redactor, "always")
    plain = step.run(_ct("NO"), PixelStep.prepare(_ct("NO")))
    assert plain.report is not None and plain.report["mode"] == "match_phi"
    assert plain.report["status"] == "clean"
    flagged = PixelStep.prepare(_ct("YES"))
    assert flagged == PixelInput(("DOE^JOHN",), True)
    verdict = step.run(_ct("NO"), flagged)  # the de-identified header no longer says YES
    assert verdict.report is not None and verdict.report["mode"] == "redact_all_text"
    assert verdict.status == "passed" and verdict.report["status"] == "redacted"
