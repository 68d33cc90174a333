"""The independent verify with the real engines: PP-OCR misses faint text, Tesseract reads it.

The image is built so that PP-OCR's detector finds nothing: a name and a birth date written
12 grey levels above a flat grey background (a faint overlay), shown through a full-range
window.  Without the second reader the
instance would pass as clean; with it, it is held with the box where the PHI is legible.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.ocr import read_lines
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.second_reader import (
    NOISY_SIGMA,
    REASON,
    TesseractReader,
    dark_on_light,
    noise_sigma,
    quieted,
)
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
TEXT_AT = (20, 240)


def _image(background: int, ink: int, text: str = "DOE JOHN 1970-01-01") -> np.ndarray:
    image = Image.new("L", (512, 512), background)
    ImageDraw.Draw(image).text(TEXT_AT, text, fill=ink, font=ImageFont.truetype(FONT, 22))
    return np.asarray(image)


def _dataset(pixels: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName, ds.PatientBirthDate = "CT", "DOE^JOHN", "19700101"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = pixels.shape[0], pixels.shape[1], 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.WindowCenter, ds.WindowWidth = 128, 256  # the display keeps faint text faint
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    return ds


@pytest.fixture(scope="module")
def redactor() -> PixelRedactor:
    return PixelRedactor(PixelPolicyConfig())


def test_faint_text_is_missed_by_pp_ocr_and_held_by_the_second_reader(
    redactor: PixelRedactor,
) -> None:
    faint = _image(100, 112)
    rgb = np.stack([faint] * 3, axis=-1)
    read = read_lines(rgb, redactor.detector, redactor.recognizer)
    assert not [line for line in read if "JOHN" in line.rec.text.upper()]  # the premise
    report = redactor.redact_dataset(_dataset(faint), ["DOE^JOHN", "19700101"])
    assert report.status == "held"
    assert report.held_reasons == [REASON]
    assert report.second_reader == "tesseract"
    (box,) = report.held_boxes
    assert box.x0 <= TEXT_AT[0] + 5 and box.y0 <= TEXT_AT[1] + 10 <= box.y1


def test_without_the_second_reader_the_same_instance_would_pass() -> None:
    alone = PixelRedactor(PixelPolicyConfig(second_reader="none"))
    report = alone.redact_dataset(_dataset(_image(100, 112)), ["DOE^JOHN", "19700101"])
    assert report.status == "clean"


def test_redacted_text_is_not_read_again(redactor: PixelRedactor) -> None:
    report = redactor.redact_dataset(_dataset(_image(0, 255)), ["DOE^JOHN", "19700101"])
    assert report.status == "redacted", report.held_reasons
    assert report.second_reader == "tesseract" and not report.held_boxes


def test_benign_text_it_reads_does_not_hold(redactor: PixelRedactor) -> None:
    report = redactor.redact_dataset(_dataset(_image(100, 112, "AXIAL 5 mm")), ["DOE^JOHN"])
    assert report.status == "clean", report.held_reasons


def test_tesseract_boxes_are_in_image_pixels_also_on_small_images() -> None:
    small = np.asarray(Image.fromarray(_image(0, 255)).resize((256, 256)))
    lines = TesseractReader().read(np.stack([small] * 3, axis=-1))
    (line,) = [x for x in lines if "JOHN" in x.text]
    assert line.box.x0 < 20 and 110 < line.box.y0 < 130 and line.box.x1 < 256


def _speckled(sigma: float, seed: int = 5) -> np.ndarray:
    """A name and birth date on heavy speckle (a percentile-windowed tomosynthesis slice)."""
    rng = np.random.default_rng(seed)
    noise = rng.normal(110.0, sigma, size=(512, 512))
    base = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))
    ImageDraw.Draw(base).text(
        TEXT_AT, "DOE JOHN 1970-01-01", fill=255, font=ImageFont.truetype(FONT, 22)
    )
    return np.asarray(base)


def test_speckle_is_denoised_before_reading_and_clean_images_are_not() -> None:
    speckled = _speckled(35.0)
    assert noise_sigma(speckled) > NOISY_SIGMA
    assert not np.array_equal(quieted(speckled), speckled)
    clean = _image(0, 255)
    assert noise_sigma(clean) < NOISY_SIGMA
    assert quieted(clean) is clean
    lines = TesseractReader().read(np.stack([speckled] * 3, axis=-1))
    assert any("JOHN" in x.text for x in lines), [x.text for x in lines]
    # the speckle is not read as a page of one-glyph lines
    assert len(lines) < 20


def test_dark_displays_are_read_inverted_and_both_polarities_are_read() -> None:
    white_on_black, black_on_white = _image(0, 255), _image(255, 0)
    assert np.array_equal(dark_on_light(white_on_black), 255 - white_on_black)
    assert dark_on_light(black_on_white) is black_on_white
    reader = TesseractReader()
    for image in (white_on_black, black_on_white):
        lines = reader.read(np.stack([image] * 3, axis=-1))
        assert any("JOHN" in x.text for x in lines), [x.text for x in lines]
