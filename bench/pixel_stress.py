"""Small print in hard places: a grid of synthetic instances, each redacted by the production
pixel redactor; how many were released with PHI left legible, how many held.

What the synthetic corpus never draws and real scanners do: three lines of 9-14 px print set
close (glyphs nearly touching), on flat speckled backgrounds with no window (the display range
then comes from the frame itself), 8- and 12-bit, bright and dark text, MONOCHROME1, outlined
text over anatomy, coloured print on JPEG-compressed ultrasound.  Each instance's header holds
the PHI written on it (name, ID, birth date, accession).  A ``leak`` is an instance not held
whose PHI lines are less than 90% covered by the fills (ultrasound: every line, being
``redact_all_text``); ``held`` counts the instances sent to review.  Both readers (PP-OCR and
the Tesseract second reader) run as in production, and again with the detector alone
(``--detector-only``: what the second reader is not there to catch).

    python bench/pixel_stress.py [--detector-only]

Prints JSON and writes bench/results/pixel_stress.json.
"""

from __future__ import annotations

import argparse
import io
import itertools
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from _services import save
from PIL import Image, ImageDraw, ImageFont
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.redactor import PixelRedactor
from dxai.configs.schema.pixels import PixelPolicyConfig

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"
LINES = ("DOE, JOHN  ID: MRN123456", "DOB: 01/01/1970  Sex: M", "Acc: A7734521")
PHI = ["DOE^JOHN", "MRN123456", "19700101", "A7734521"]
AT = (60, 80)


@dataclass(frozen=True)
class Case:
    """One grey instance of the grid: geometry, print, background and display."""

    family: str
    rows: int
    cols: int
    size: int
    gap: int = 0  # pixels between one line's descent and the next line's ascent (may be < 0)
    bits: int = 8
    background: float = 40.0
    noise: float = 6.0
    text: int = 255
    window: tuple[int, int] | None = None
    anatomy: float = 0.0  # peak of a smooth bright blob in the middle (stored levels)
    mono1: bool = False
    outlined: bool = False


def grey_cases() -> Iterator[Case]:
    """The grey part of the grid."""
    sizes = [(800, 1000), (1100, 1180), (1500, 1200)]
    for (rows, cols), size, gap in itertools.product(sizes, [9, 12], [-3, -1, 1]):
        yield Case("tight_8bit_flat", rows, cols, size, gap)
    for (rows, cols), size in itertools.product(sizes[::2], [10, 13]):
        yield Case(
            "12bit_flat_no_window", rows, cols, size, bits=12, background=400, noise=30, text=4095
        )
        yield Case("12bit_dark_text", rows, cols, size, bits=12, background=3500, noise=30, text=0)
        yield Case("8bit_grey_text", rows, cols, size, text=180)
        yield Case(
            "12bit_anatomy_window",
            rows,
            cols,
            size,
            bits=12,
            background=400,
            noise=30,
            text=4095,
            window=(2048, 4096),
            anatomy=2000,
        )
        yield Case(
            "mono1_12bit",
            rows,
            cols,
            size,
            bits=12,
            background=2500,
            noise=40,
            text=0,
            anatomy=-1500,
            mono1=True,
        )
        yield Case(
            "outlined_12bit",
            rows,
            cols,
            size,
            bits=12,
            background=800,
            noise=30,
            text=4095,
            window=(2048, 4096),
            anatomy=2500,
            outlined=True,
        )


def _mask(case: Case) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Where the print is (boolean), and each line's box."""
    mask = Image.new("L", (case.cols, case.rows), 0)
    draw, font = ImageDraw.Draw(mask), ImageFont.truetype(FONT, case.size)
    ascent, descent = font.getmetrics()
    boxes = []
    for i, text in enumerate(LINES):
        xy = (AT[0], AT[1] + i * (ascent + descent + case.gap))
        draw.text(xy, text, fill=255, font=font)
        boxes.append(draw.textbbox(xy, text, font=font))
    return np.asarray(mask) > 128, boxes


def grey_instance(case: Case) -> tuple[Dataset, np.ndarray]:
    """The instance of ``case`` and its print mask."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0 : case.rows, 0 : case.cols]
    blob = np.exp(
        -(
            ((yy - case.rows / 2) / (case.rows / 3)) ** 2
            + ((xx - case.cols / 2) / (case.cols / 3)) ** 2
        )
    )
    top = (1 << case.bits) - 1
    pixels = np.clip(
        case.background + case.anatomy * blob + rng.normal(0, case.noise, blob.shape), 0, top
    )
    mask, _ = _mask(case)
    if case.outlined:
        ring = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & ~mask
        pixels[ring] = 0
    pixels[mask] = case.text
    ds = _dataset(case.rows, case.cols, "DX", uid.DigitalXRayImageStorageForPresentation)
    ds.PhotometricInterpretation = "MONOCHROME1" if case.mono1 else "MONOCHROME2"
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.BitsAllocated = 8 if case.bits <= 8 else 16
    ds.BitsStored, ds.HighBit = case.bits, case.bits - 1
    if case.window:
        ds.WindowCenter, ds.WindowWidth = case.window
    ds.PixelData = pixels.astype(np.uint8 if case.bits <= 8 else np.uint16).tobytes()
    return ds, mask


def _dataset(rows: int, cols: int, modality: str, sop_class: str) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, uid.generate_uid()
    ds.Modality, ds.Rows, ds.Columns = modality, rows, cols
    return ds


def us_instance(
    rows: int, cols: int, size: int, colour: tuple[int, int, int], quality: int
) -> tuple[Dataset, list[tuple[int, int, int, int]], np.ndarray]:
    """An RGB ultrasound frame (speckled sector) with coloured print, JPEG-degraded when
    ``quality``; the line boxes and the print mask."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:rows, 0:cols]
    sector = (np.abs(xx - cols / 2) < (yy - rows * 0.1) * 0.9 + 5) & (yy < rows * 0.9)
    grey = np.where(sector, np.clip(rng.gamma(1.5, 40, (rows, cols)), 0, 255), 0)
    image = Image.fromarray(np.repeat(grey[..., None], 3, axis=2).astype(np.uint8))
    mask = Image.new("L", (cols, rows), 0)
    font = ImageFont.truetype(FONT.replace("-Bold", ""), size)
    draw, ink = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    boxes = []
    for i, text in enumerate(LINES):
        xy = (8, 8 + i * (size + 3))
        draw.text(xy, text, fill=colour, font=font)
        ink.text(xy, text, fill=255, font=font)
        boxes.append(draw.textbbox(xy, text, font=font))
    if quality:
        buf = io.BytesIO()
        image.save(buf, "JPEG", quality=quality, subsampling=2)
        image = Image.open(buf).convert("RGB")
    ds = _dataset(rows, cols, "US", uid.UltrasoundImageStorage)
    ds.SamplesPerPixel, ds.PlanarConfiguration, ds.PhotometricInterpretation = 3, 0, "RGB"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = np.asarray(image).tobytes()
    return ds, boxes, np.asarray(mask) > 128


def _score(
    report: Any, boxes: list[tuple[int, int, int, int]], shape: tuple[int, int], ink: np.ndarray
) -> dict[str, Any]:
    covered = np.zeros(shape, bool)
    for b in report.boxes:
        covered[b.y0 : b.y1, b.x0 : b.x1] = True
    left = [
        round(1.0 - float(covered[y0:y1, x0:x1][ink[y0:y1, x0:x1]].mean()), 3)
        for x0, y0, x1, y1 in boxes
    ]
    held = report.status == "held"
    return {
        "status": report.status,
        "held_reasons": report.held_reasons,
        "uncovered": left,
        "leak": not held and max(left) > 0.1,
    }


def run(detector_only: bool) -> dict[str, Any]:
    """Every case of the grid through one redactor; the rows and the totals per family."""
    policy = PixelPolicyConfig(second_reader="none") if detector_only else PixelPolicyConfig()
    redactor = PixelRedactor(policy)
    rows: list[dict[str, Any]] = []
    started = time.monotonic()
    for case in grey_cases():
        ds, mask = grey_instance(case)
        _, boxes = _mask(case)
        report = redactor.redact_dataset(ds, PHI)
        rows.append({**case.__dict__, **_score(report, boxes, mask.shape, mask)})
    for (r, c), size, colour, quality in itertools.product(
        [(480, 640), (768, 1024)],
        [9, 11],
        [(255, 255, 255), (255, 255, 0), (80, 200, 255)],
        [0, 60],
    ):
        ds, boxes, mask = us_instance(r, c, size, colour, quality)
        report = redactor.redact_dataset(ds, PHI)
        row = {
            "family": "us_colour_jpeg",
            "rows": r,
            "cols": c,
            "size": size,
            "colour": colour,
            "quality": quality,
        }
        rows.append({**row, **_score(report, boxes, (r, c), mask)})
    return {
        "benchmark": "pixel_stress",
        "second_reader": policy.second_reader,
        "instances": len(rows),
        "leaks": sum(r["leak"] for r in rows),
        "held": sum(r["status"] == "held" for r in rows),
        "families": _families(rows),
        "seconds": round(time.monotonic() - started, 1),
        "rows": rows,
    }


def _families(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    out: dict[str, Counter[str]] = {}
    for row in rows:
        tally = out.setdefault(row["family"], Counter())
        tally["instances"] += 1
        tally["leaks"] += int(row["leak"])
        tally["held"] += int(row["status"] == "held")
    return {name: dict(tally) for name, tally in out.items()}


def main() -> int:
    """Parse arguments, run the grid, print and save the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detector-only", action="store_true")
    args = parser.parse_args()
    result = run(args.detector_only)
    save("pixel_stress" + ("_detector_only" if args.detector_only else ""), result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
