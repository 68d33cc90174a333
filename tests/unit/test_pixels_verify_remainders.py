"""The verify pass reads again only what fills left of a line."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.ocr import Line
from dxai.actors.pixels.redactor import PixelRedactor, could_hide_text, remainders
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.unit

LINE = Box(10, 100, 210, 120)  # 20 px tall


def test_a_fill_over_the_middle_leaves_both_sides() -> None:
    assert remainders(LINE, [Box(80, 98, 150, 122)]) == [
        Box(10, 100, 80, 120),
        Box(150, 100, 210, 120),
    ]


def test_a_fill_over_nearly_the_whole_height_leaves_no_thin_strip() -> None:
    assert remainders(LINE, [Box(8, 101, 212, 119)]) == []  # 18 of 20 rows


def test_a_fill_over_a_thin_band_does_not_cover_the_columns() -> None:
    assert remainders(LINE, [Box(8, 95, 212, 104)]) == [LINE]  # 4 of 20 rows


def test_slivers_narrower_than_a_character_are_not_read() -> None:
    fills = [Box(10, 100, 100, 120), Box(105, 100, 210, 120)]
    assert remainders(LINE, fills) == []  # a 5 px gap: half a character at most
    assert remainders(LINE, [Box(0, 0, 5, 5)]) == [LINE]  # a fill that misses it


class _Detector:
    def detect(self, image: UInt8Array) -> list[Box]:
        return [LINE] if image[..., 0].max() > 200 else []


class _Reader:
    """Reads the whole line as a name, and anything narrower (a remainder) as it is asked."""

    def __init__(self, rest: Recognition) -> None:
        self.rest = rest
        self.crops: list[tuple[int, ...]] = []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        self.crops += [c.shape[:2] for c in crops]
        whole = (LINE.height, LINE.width)
        return [Recognition("DOE JOHN", 0.99) if c.shape[:2] == whole else self.rest for c in crops]


def _dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName = "CT", "DOE^JOHN"
    pixels = np.full((256, 256), 30, dtype=np.uint8)
    pixels[LINE.y0 : LINE.y1, LINE.x0 : LINE.x1] = 250
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 256, 256, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = pixels.tobytes()
    return ds


def test_a_whole_line_fill_is_not_read_again_as_a_low_confidence_sliver() -> None:
    reader = _Reader(Recognition("C.L.", 0.1))
    policy = PixelPolicyConfig(second_reader="none")
    report = PixelRedactor(policy, _Detector(), reader).redact_dataset(_dataset(), ["DOE^JOHN"])
    assert report.status == "redacted", report.held_reasons
    assert reader.crops == [(LINE.height, LINE.width)]  # read once, never again


class _Unsure:
    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition("x7qz", 0.2) for _ in crops]


def test_a_hold_carries_the_box_and_reason_for_the_reviewer() -> None:
    policy = PixelPolicyConfig(second_reader="none", default_mode="match_phi")
    report = PixelRedactor(policy, _Detector(), _Unsure()).redact_dataset(_dataset(), ["DOE^JOHN"])
    assert report.status == "held"
    assert report.held_reasons == ["low_confidence"]
    assert [(b.x0, b.y0, b.x1, b.y1, b.reason) for b in report.held_boxes] == [
        (LINE.x0, LINE.y0, LINE.x1, LINE.y1, "low_confidence")
    ]
    assert report.as_dict()["held_boxes"][0]["reason"] == "low_confidence"


def test_a_vertical_line_is_cut_along_its_length() -> None:
    column = Box(100, 10, 120, 210)  # 20 px thick, running down the image
    assert remainders(column, [Box(98, 80, 122, 150)], vertical=True) == [
        Box(100, 10, 120, 80),
        Box(100, 150, 120, 210),
    ]


def test_unreadable_vertical_text_may_hide_phi() -> None:
    column = Box(100, 10, 120, 210)
    turned = Line(column, Recognition("x7qz", 0.2, rotation=90))
    upright = Line(column, Recognition("x7", 0.2))
    assert could_hide_text(turned, max_height=64)
    assert not could_hide_text(upright, max_height=64)  # a 200 px tall blob read upright
