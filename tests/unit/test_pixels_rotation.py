"""Vertical and upside-down text: read turned, filled as whole lines; upright lines unchanged."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.ocr import (
    EngineTextDetector,
    EngineTextRecognizer,
    Line,
    decide,
    group_lines,
    read_images,
    span_box,
)
from dxai.actors.pixels.orient import direction_of, read_crops, vertical_reading
from dxai.actors.pixels.phi import build_terms
from dxai.actors.pixels.rec_cache import with_cache
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.types import Box, Recognition, Rotation, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.synth.fonts import load_font

pytestmark = pytest.mark.unit

NAME, BIRTH = "DOE^JOHN", "19700101"
TEXT = "DOE^JOHN 1970-01-01"
# DejaVu Sans at this size: the direction classifier calls the upside-down line 180 (at 18 px
# it does not; about one upside-down line in thirteen is missed, see orient.py)
FONT_PX = 22
# np.rot90 turns of the image -> the turn that reads its text back
READ_BACK: dict[int, Rotation] = {1: 270, 2: 180, 3: 90}
TERMS = build_terms([NAME, BIRTH, "MRN9388823"])
# PHI evidence only: Secondary Capture (OT) would otherwise have all of its text filled
MATCH_PHI = PixelPolicyConfig(mode_modalities={}, mode_sop_classes={})


@lru_cache(maxsize=1)
def _models() -> tuple[EngineTextDetector, EngineTextRecognizer]:
    return EngineTextDetector(), EngineTextRecognizer()


def _grey(turns: int = 0) -> UInt8Array:
    """``TEXT`` in light grey on a dark 512 x 512 image, turned ``turns`` x 90 degrees."""
    canvas = Image.new("L", (512, 512), 20)
    ImageDraw.Draw(canvas).text((40, 60), TEXT, font=load_font(0, FONT_PX), fill=230)
    return np.ascontiguousarray(np.rot90(np.asarray(canvas, dtype=np.uint8), turns))


def _rgb(grey: UInt8Array) -> UInt8Array:
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def _dataset(grey: UInt8Array) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.SecondaryCaptureImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName, ds.PatientBirthDate = "OT", NAME, BIRTH
    ds.Rows, ds.Columns, ds.SamplesPerPixel = grey.shape[0], grey.shape[1], 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = grey.tobytes()
    return ds


def _reads_name(text: str) -> bool:
    return "DOE" in text and "JOHN" in text and "1970-01-01" in text


@pytest.mark.parametrize("turns", [1, 2, 3])
def test_turned_line_is_read_turned_back(turns: int) -> None:
    det, rec = _models()
    (line,) = read_images([_rgb(_grey(turns))], det, rec)[0]
    assert _reads_name(line.rec.text) and line.rec.confidence > 0.9
    assert line.rec.rotation == READ_BACK[turns]
    assert span_box(line, 0, 3) == line.box  # no characters placed along x: the whole line


def test_upright_line_reads_as_before() -> None:
    det, rec = _models()
    image = _rgb(_grey())
    (box,) = det.detect(image)
    (before,) = rec.recognize([image[box.y0 : box.y1, box.x0 : box.x1]])
    (line,) = read_images([image], det, rec)[0]
    assert line == Line(box, before) and line.rec.rotation == 0 and _reads_name(before.text)
    assert span_box(line, 0, 3).x1 < box.x0 + box.width // 2  # characters still placed


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_redactor_fills_turned_phi(turns: int) -> None:
    det, rec = _models()
    grey = _grey(turns)
    ds = _dataset(grey)
    report = PixelRedactor(MATCH_PHI, det, rec).redact_dataset(ds, [NAME, BIRTH], "always")
    assert report.status == "redacted" and not report.held_reasons
    left = np.asarray(ds.pixel_array)
    assert int((grey > 128).sum()) > 500 and int((left > 128).sum()) == 0  # no glyph pixel left


def test_cache_passes_the_direction_classifier_on() -> None:
    _, rec = _models()
    assert direction_of(rec) is rec.direction
    assert direction_of(with_cache(rec, 8)) is rec.direction
    assert direction_of(object()) is None


# the value of the pixel that turning a tall crop the right way brings to its top-left corner
CODE: dict[Rotation, int] = {90: 9, 270: 27}


class Script:
    """A recogniser reading crops by marks: a tall crop reads well only when turned by ``good``,
    a flat crop marked 7 top-right reads badly, and well once turned by 180 degrees."""

    def __init__(self, good: Rotation = 90) -> None:
        self.good = good
        self.calls: list[list[tuple[int, int]]] = []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        self.calls.append([(c.shape[0], c.shape[1]) for c in crops])
        return [self._read(c) for c in crops]

    def _read(self, crop: UInt8Array) -> Recognition:
        if int(crop[0, 0, 0]) == CODE[self.good]:
            return Recognition("DOE JOHN", 0.95)
        if int(crop[0, -1, 0]) == 7:  # an unsure flat crop as it stands
            return Recognition("x", 0.3)
        if int(crop[-1, 0, 0]) == 7:  # ... turned by 180 degrees
            return Recognition("kVp", 0.99)
        if crop.shape[0] > crop.shape[1]:  # a tall crop as it stands
            return Recognition("I", 0.6)
        return Recognition("", 0.1) if crop.any() else Recognition("kVp", 0.99)


class Flagger:
    """A direction classifier calling every crop upside down; remembers what it was shown."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def upside_down(self, crops: list[UInt8Array]) -> list[bool]:
        self.seen.append(len(crops))
        return [True for _ in crops]


def _tall(good: Rotation) -> UInt8Array:
    """A 60 x 20 crop that :class:`Script` reads well turned by ``good`` only."""
    crop = np.zeros((60, 20, 3), np.uint8)
    corner = {90: (0, -1), 270: (-1, 0)}  # what np.rot90 brings to [0, 0] turning by 90, 270
    crop[corner[good]] = CODE[good]
    return crop


def test_tall_crops_are_read_both_ways_in_one_call_and_the_better_kept() -> None:
    rec = Script(good=270)
    wide = np.zeros((12, 60, 3), np.uint8)
    (flat, tall) = read_crops([wide, _tall(270)], rec)
    assert rec.calls == [[(12, 60), (60, 20), (20, 60), (20, 60)]]
    assert (flat.text, flat.rotation) == ("kVp", 0)
    assert (tall.text, tall.rotation) == ("DOE JOHN", 270)


def test_only_unsure_flat_crops_go_to_the_classifier_in_one_batch() -> None:
    rec, cls = Script(), Flagger()
    unsure = np.zeros((12, 60, 3), np.uint8)
    unsure[0, -1] = 7  # reads "x" at 0.3; turned by 180 degrees, "kVp" at 0.99
    sure = np.zeros((12, 60, 3), np.uint8)
    out = read_crops([sure, unsure, _tall(90), unsure], rec, cls)
    assert cls.seen == [2]  # the two unsure flat crops, not the sure one nor the tall one
    assert [(r.text, r.rotation) for r in out] == [
        ("kVp", 0),
        ("kVp", 180),
        ("DOE JOHN", 90),
        ("kVp", 180),
    ]
    assert len(rec.calls) == 2 and len(rec.calls[1]) == 2


def test_upright_reading_of_a_narrow_glyph_is_kept() -> None:
    one = Recognition("1", 0.99)
    turned = [Recognition("-", 0.7), Recognition("", 0.0)]
    assert vertical_reading(one, turned) == one
    line = [Recognition("DOE JOHN", 0.9), Recognition("NHOr 3OQ", 0.6)]
    kept = vertical_reading(Recognition("I", 0.97), line)  # one glyph: shorter than the line
    assert (kept.text, kept.rotation) == ("DOE JOHN", 90)


def _turned(box: Box, text: str, rotation: Rotation) -> Line:
    spans = tuple((i / len(text), (i + 1) / len(text)) for i in range(len(text)))
    return Line(box, Recognition(text, 0.95, spans, rotation))


def test_phi_on_a_turned_line_fills_the_whole_line_uncut() -> None:
    line = _turned(Box(40, 100, 64, 400), "DOE JOHN kVp 120", 270)
    above = Line(Box(0, 90, 300, 110), Recognition("kVp 120 mAs 5", 0.99))  # kept, overlapping
    found = decide([line, above], TERMS, False, ())
    assert {p.box for p in found} == {line.box}


def test_turned_lines_are_groups_of_their_own() -> None:
    left = _turned(Box(40, 100, 64, 400), "DOE JOHN", 90)
    right = _turned(Box(66, 100, 90, 400), "1970-01-01", 90)
    assert [g.text for g in group_lines([left, right])] == ["DOE JOHN", "1970-01-01"]


@pytest.mark.parametrize(
    ("rotation", "side"), [(0, "right"), (90, "below"), (180, "left"), (270, "above")]
)
def test_lost_identifier_characters_are_looked_for_where_the_line_reads_on(
    rotation: Rotation, side: str
) -> None:
    box = Box(200, 200, 249, 212) if rotation in (0, 180) else Box(200, 200, 212, 249)
    found = [p.box for p in decide([_turned(box, "MRN938", rotation)], TERMS, False, (), 512)]
    beyond = [b for b in found if not b.intersection(box)]
    assert beyond, found
    where = {
        "right": all(b.x0 >= box.x1 for b in beyond),
        "left": all(b.x1 <= box.x0 for b in beyond),
        "below": all(b.y0 >= box.y1 for b in beyond),
        "above": all(b.y1 <= box.y0 for b in beyond),
    }
    assert where[side]
