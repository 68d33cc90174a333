"""An ultrasound loop read through its projections: a frame counter is not a hold, PHI is.

A 10-frame loop is OCRed on its first frame and its max/min projections (``max_ocr_frames`` 4).
The counter ``1/10`` ... ``10/10`` superimposes into an unreadable glyph on the projections; it
used to hold every such loop (``low_confidence``: 13% of the soak's synthetic US studies).  Now
that region is read on every frame (``actors/pixels/cine.py``): a counter releases the loop, a
name written there on one frame holds it.  Real PP-OCR and Tesseract engines.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.redactor import PixelRedactor
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.integration

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
FRAMES, ROWS, COLS = 10, 240, 320


def _loop(counter_on: dict[int, str] | None = None) -> Dataset:
    rng = np.random.default_rng(4)
    font = ImageFont.truetype(FONT, 14)
    frames = []
    for n in range(FRAMES):
        image = Image.new("RGB", (COLS, ROWS), (0, 0, 0))
        draw = ImageDraw.Draw(image)
        draw.pieslice((40, -120, 280, 200), 60, 120, fill=(60, 60, 60))
        draw.text((4, 4), "DOE JOHN", fill=(255, 255, 255), font=font)
        text = (counter_on or {}).get(n, f"{n + 1}/{FRAMES}")
        draw.text((262, 204), text, fill=(255, 255, 0), font=font)
        pixels = np.asarray(image).copy()
        pixels[60:180, 100:220] += rng.integers(0, 40, (120, 120, 3), dtype=np.uint8)
        frames.append(pixels)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.UltrasoundMultiFrameImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName = "US", "DOE^JOHN"
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.NumberOfFrames = ROWS, COLS, 3, FRAMES
    ds.PhotometricInterpretation, ds.PlanarConfiguration = "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.stack(frames).tobytes()
    return ds


@pytest.fixture(scope="module")
def redactor() -> PixelRedactor:
    return PixelRedactor(PixelPolicyConfig(max_ocr_frames=4))


def test_a_changing_frame_counter_does_not_hold_the_loop(redactor: PixelRedactor) -> None:
    report = redactor.redact_dataset(_loop(), ["DOE^JOHN"])
    assert report.frames == FRAMES and report.frames_ocr == 3  # first frame + projections
    assert report.status == "redacted", (report.held_reasons, report.held_boxes)


def test_a_name_on_one_frame_where_the_counter_stands_holds_it(redactor: PixelRedactor) -> None:
    report = redactor.redact_dataset(_loop({5: "SMITH"}), ["DOE^JOHN", "SMITH^ANN"])
    assert report.status == "held"
    assert any(b.x0 >= 200 and b.y0 >= 180 for b in report.held_boxes), report.held_boxes
