"""Reading text lines that do not run left to right: vertical lines and upside-down ones.

The recogniser reads a crop left to right.  A vertical line (a label along the edge of an
ultrasound, a film scanned on its side: a box much taller than wide) is read turned by 90 and by
270 degrees (``np.rot90``, counter-clockwise) and the more confident reading is kept.  A
horizontal line first read with less than full confidence may be upside down (a film scanned
the wrong way round): the PP-OCR direction classifier (``ppocr_cls``, labels 0 and 180) looks at
those crops only, in one batch, and the ones it calls upside down are read again turned by 180
degrees, the more confident reading kept.  A reading kept turned says so in its ``rotation``;
its characters cannot be placed along x, so such a line is PHI as a whole or not at all
(:func:`~dxai.actors.pixels.ocr.span_box`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from dxai.actors.pixels.types import (
    DirectionClassifier,
    Recognition,
    Rotation,
    TextRecognizer,
    UInt8Array,
)

# a box this many times taller than wide holds a vertical line ...
TALL_RATIO = 1.5
# ... when it is at least this wide (the height of the characters of a vertical line)
MIN_TEXT_HEIGHT = 8
# the turns that read a vertical line: text running down, text running up
VERTICAL: tuple[Rotation, Rotation] = (90, 270)
# horizontal lines first read below this mean confidence go to the direction classifier (it is
# cheap): upside-down text reads at 0.6 to 0.9 as often as below 0.5 (``O``, ``H``, ``N``, ``0``
# and ``1`` look the same turned); clear upright text seldom reads below 0.9
CHECK_DIRECTION_BELOW = 0.9


def is_tall(crop: UInt8Array) -> bool:
    """Whether a crop is shaped like a vertical text line (taller than wide, wide enough)."""
    height, width = crop.shape[:2]
    return bool(width >= MIN_TEXT_HEIGHT and height > TALL_RATIO * width)


def turn(crop: UInt8Array, rotation: Rotation) -> UInt8Array:
    """A contiguous copy of ``crop`` turned counter-clockwise by ``rotation`` degrees."""
    return np.ascontiguousarray(np.rot90(crop, rotation // 90))


def direction_of(recognizer: object) -> DirectionClassifier | None:
    """The direction classifier a recogniser carries (its ``direction``), if any."""
    found = getattr(recognizer, "direction", None)
    return found if isinstance(found, DirectionClassifier) else None


def read_crops(
    crops: Sequence[UInt8Array], rec: TextRecognizer, cls: DirectionClassifier | None = None
) -> list[Recognition]:
    """Read each crop the way its text runs (see the module text).

    One recogniser call reads every crop as it stands and every tall one turned both ways; the
    classifier (when given) and one more recogniser call deal with the unsure horizontal ones.
    """
    if not crops:
        return []
    tall = [i for i, crop in enumerate(crops) if is_tall(crop)]
    turned = [turn(crops[i], rotation) for i in tall for rotation in VERTICAL]
    recs = rec.recognize([*crops, *turned])
    out = recs[: len(crops)]
    for n, i in enumerate(tall):
        start = len(crops) + len(VERTICAL) * n
        out[i] = vertical_reading(out[i], recs[start : start + len(VERTICAL)])
    if cls is not None:
        _read_upside_down(crops, out, set(tall), rec, cls)
    return out


def vertical_reading(upright: Recognition, turned: Sequence[Recognition]) -> Recognition:
    """The reading kept for a tall crop: the more confident of its turned readings (``turned``
    in the order of :data:`VERTICAL`), unless the upright one is more confident and no shorter
    (a narrow glyph such as ``1`` standing alone)."""
    best = max(
        (replace(r, rotation=rotation) for r, rotation in zip(turned, VERTICAL, strict=True)),
        key=lambda r: r.confidence,
    )
    upright_wins = upright.confidence > best.confidence
    if upright_wins and len(upright.text.strip()) >= len(best.text.strip()):
        return upright
    return best


def _read_upside_down(
    crops: Sequence[UInt8Array],
    out: list[Recognition],
    skip: set[int],
    rec: TextRecognizer,
    cls: DirectionClassifier,
) -> None:
    """Read again, turned by 180 degrees, the unsure crops (not in ``skip``) that ``cls`` calls
    upside down; where that reading is more confident it replaces the one in ``out``."""
    unsure = [
        i for i, r in enumerate(out) if i not in skip and r.confidence < CHECK_DIRECTION_BELOW
    ]
    if not unsure:
        return
    flags = cls.upside_down([crops[i] for i in unsure])
    flipped = [i for i, flag in zip(unsure, flags, strict=True) if flag]
    if not flipped:
        return
    again = rec.recognize([turn(crops[i], 180) for i in flipped])
    for i, reading in zip(flipped, again, strict=True):
        if reading.confidence > out[i].confidence:
            out[i] = replace(reading, rotation=180)
