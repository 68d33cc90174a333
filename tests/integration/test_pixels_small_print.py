"""Small print on a small image: the detector reads it upscaled, so it is never released legible.

Found on a real portable chest radiograph (394 x 552, 8-px labels over the image edge): read at
its own size, the detector missed the ``Institution Name:`` line and the instance was released
with the institution legible.  The detector now reads images whose short side is under 512
pixels upscaled to 512 (``DetParams.min_side``).  The image below is built the same way; the
instance must come out with the line filled, or held.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.det import DetParams
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
ROWS, COLS, TOP, SIZE = 394, 552, 322, 8
LINES = (
    "Institution Name: Francis, Todd and Boyer Medical Center",
    "Study Date: 2013 Sep 11",
    "Patient ID: 6774825273",
    "Name: KAUFMAN SCOTT",
)


def _dataset() -> Dataset:
    rng = np.random.default_rng(1)
    image = Image.fromarray(np.clip(rng.normal(40, 6, (ROWS, COLS)), 0, 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(FONT, SIZE)
    for i, text in enumerate(LINES):
        draw.text((110, TOP + i * (SIZE + 3)), text, fill=255, font=font)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID = uid.DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = uid.generate_uid()
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "DX", ROWS, COLS, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.asarray(image).tobytes()
    return ds


def test_small_print_on_a_small_image_is_filled_or_held() -> None:
    assert DetParams().min_side >= 512
    # the detector alone decides here: no second reader to catch what it misses
    redactor = PixelRedactor(PixelPolicyConfig(second_reader="none"))
    ds = _dataset()
    report = redactor.redact_dataset(ds, ["KAUFMAN^SCOTT", "6774825273"])
    pixels = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(ROWS, COLS)
    institution = pixels[TOP : TOP + SIZE + 2, 200:330]  # "Francis, Todd and Boyer"
    legible = int((institution > 200).sum()) > 20
    assert report.status == "held" or not legible, (report.status, report.held_reasons)
    assert report.status in {"held", "redacted"}


LARGE_ROWS, LARGE_COLS, LARGE_SIZE = 3000, 2400, 18
# one block in a corner, one straddling the middle tiles' overlap (x 900-1500, y 750-1500)
LARGE_AT = ((40, 40), (1380, 1450))
LARGE_LINES = ("DOE, JOHN   ID: MRN123456", "DOB: 01/01/1970   Sex: M")


def _large() -> Dataset:
    """A 3000 x 2400 12-bit radiograph with 18-px annotation lines.  The whole-image pass reads
    it at a third of its size (6-px text): here it holds the instance (a box over two lines,
    unreadable); with a flatter background such a box was dismissed as not text and the
    instance released legible."""
    rng = np.random.default_rng(2)
    yy, xx = np.mgrid[0:LARGE_ROWS, 0:LARGE_COLS]
    body = 1200 + 800 * np.exp(-(((yy - 1500) / 1000) ** 2 + ((xx - 1200) / 800) ** 2))
    pixels = np.clip(body + rng.normal(0, 20, body.shape), 0, 4095).astype(np.uint16)
    mask = Image.new("L", (LARGE_COLS, LARGE_ROWS), 0)
    draw, font = ImageDraw.Draw(mask), ImageFont.truetype(FONT, LARGE_SIZE)
    for x, y in LARGE_AT:
        for i, text in enumerate(LARGE_LINES):
            draw.text((x, y + i * 27), text, fill=255, font=font)
    pixels[np.asarray(mask) > 128] = 3900
    ds = _dataset()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 3000, 2400, 16, 12, 11
    ds.WindowCenter, ds.WindowWidth = 2000, 4000
    ds.PixelData = pixels.tobytes()
    return ds


def test_small_print_on_a_large_image_is_read_in_tiles() -> None:
    # the detector alone decides here: no second reader to catch what it misses
    redactor = PixelRedactor(PixelPolicyConfig(second_reader="none"))
    ds = _large()
    report = redactor.redact_dataset(ds, ["DOE^JOHN", "MRN123456", "19700101"])
    assert report.status == "redacted", (report.status, report.held_reasons)
    pixels = np.frombuffer(ds.PixelData, dtype=np.uint16).reshape(LARGE_ROWS, LARGE_COLS)
    for x, y in LARGE_AT:  # the name and the ID on the first line, the birth date below
        for x0, x1, dy in ((x, x + 100, 0), (x + 170, x + 300, 0), (x + 50, x + 150, 27)):
            block = pixels[y + dy : y + dy + LARGE_SIZE, x0:x1]
            assert int((block > 3800).sum()) < 10, f"text left at ({x0}, {y + dy})"


FLAT_ROWS, FLAT_COLS, FLAT_SIZE, FLAT_STEP, FLAT_AT = 800, 1000, 12, 12, (60, 80)
FLAT_LINES = ("DOE, JOHN  ID: MRN123456", "DOB: 01/01/1970  Sex: M", "Acc: A7734521")


def _flat(rows: int = FLAT_ROWS, cols: int = FLAT_COLS) -> Dataset:
    """An 8-bit image with no window: three lines of 12-px print set tight (their glyphs nearly
    touch) on a flat, speckled dark background.  Displayed through a 99.5th-percentile top, the
    noise was stretched as bright as the text: the detector found one box over the three
    lines, read it as nothing, the second reader read nothing either, and the instance was
    released with every line legible."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(np.clip(rng.normal(40, 6, (rows, cols)), 0, 255).astype(np.uint8))
    draw, font = ImageDraw.Draw(image), ImageFont.truetype(FONT, FLAT_SIZE)
    x, y = FLAT_AT
    for i, text in enumerate(FLAT_LINES):
        draw.text((x, y + i * FLAT_STEP), text, fill=255, font=font)
    ds = _dataset()
    ds.Rows, ds.Columns, ds.PixelData = rows, cols, np.asarray(image).tobytes()
    return ds


def test_tight_small_print_on_a_flat_8_bit_background_is_filled_or_held() -> None:
    redactor = PixelRedactor(PixelPolicyConfig())
    ds = _flat()
    report = redactor.redact_dataset(ds, ["DOE^JOHN", "MRN123456", "19700101", "A7734521"])
    assert report.status in {"held", "redacted"}, (report.status, report.text_regions)
    if report.status == "redacted":
        pixels = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(FLAT_ROWS, FLAT_COLS)
        x, y = FLAT_AT
        block = pixels[y : y + 3 * FLAT_STEP + 4, x : x + 12 * FLAT_SIZE]
        assert int((block > 200).sum()) < 15


def test_tight_lines_in_one_box_are_read_line_by_line() -> None:
    # the detector alone: its box over the three lines read as nothing and held the instance;
    # cut between its lines, each line is read and its PHI filled
    redactor = PixelRedactor(PixelPolicyConfig(second_reader="none"))
    ds = _flat(1100, 1180)  # read at 960: the lines all but touch
    report = redactor.redact_dataset(ds, ["DOE^JOHN", "MRN123456", "19700101", "A7734521"])
    assert report.status == "redacted", (report.status, report.held_reasons)
    pixels = np.frombuffer(ds.PixelData, dtype=np.uint8).reshape(1100, 1180)
    x, y = FLAT_AT
    assert int((pixels[y : y + 3 * FLAT_STEP + 4, x : x + 12 * FLAT_SIZE] > 200).sum()) < 15
