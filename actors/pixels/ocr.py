"""OCR one display image and decide which parts of each text line are PHI."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dxai.actors.pixels.phi import PhiTerms, phi_spans
from dxai.actors.pixels.types import (
    Box,
    Recognition,
    TextDetector,
    TextRecognizer,
    UInt8Array,
)

WHOLE_LINE_SHARE = 0.6


@dataclass(frozen=True)
class Line:
    """A detected text line and its recognition."""

    box: Box
    rec: Recognition


@dataclass(frozen=True)
class PhiBox:
    """A part of a line to fill, with the reason (never the text itself)."""

    box: Box
    reason: str


def read_lines(image: UInt8Array, det: TextDetector, rec: TextRecognizer) -> list[Line]:
    """Detect and recognise the text lines of one RGB image."""
    boxes = det.detect(image)
    if not boxes:
        return []
    crops = [image[b.y0 : b.y1, b.x0 : b.x1] for b in boxes]
    return [Line(b, r) for b, r in zip(boxes, rec.recognize(crops), strict=True)]


def span_box(line: Line, start: int, end: int) -> Box:
    """Pixel box of characters ``start:end`` of a line, padded by about half a character."""
    box, spans = line.box, line.rec.char_spans
    if not spans or len(spans) != len(line.rec.text):
        return box
    width = box.width
    char_w = width / max(len(spans), 1)
    left = box.x0 if start == 0 else box.x0 + spans[start][0] * width - 1.0 * char_w
    right = box.x1 if end >= len(spans) else box.x0 + spans[end - 1][1] * width + 1.0 * char_w
    return Box(max(box.x0, int(left)), box.y0, min(box.x1, int(right + 0.999)), box.y1)


def decide(
    lines: Sequence[Line],
    terms: PhiTerms,
    redact_all: bool,
    allow: Sequence[re.Pattern[str]],
) -> list[PhiBox]:
    """The PHI parts of ``lines`` as pixel boxes."""
    out: list[PhiBox] = []
    for line in lines:
        spans = phi_spans(line.rec.text, terms, redact_all, allow)
        covered = sum(end - start for start, end, _ in spans)
        if spans and covered >= WHOLE_LINE_SHARE * len(line.rec.text.strip()):
            out.append(PhiBox(line.box, spans[0][2]))
            continue
        out.extend(PhiBox(span_box(line, start, end), reason) for start, end, reason in spans)
    return out
