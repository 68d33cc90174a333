"""Boxes over more than one line of text, read again line by line.

The detector joins lines of small print set close together (a glyph's descender nearly touching
the capitals below) into one box; the recogniser reads one line per crop, so such a box reads
as nothing or as a few low-confidence characters.  Before, it held the instance for review
(``low_confidence``) at best.  A poorly read box whose rows of ink fall into two or more bands
of line height, with near-empty rows between them, is cut between the bands, and the pieces are
read as lines of their own; their readings replace the box's when they are more confident.
A box that reads well is never cut, so a well-read line is left as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import cv2
import numpy as np

from dxai.actors.pixels.orient import direction_of, read_crops
from dxai.actors.pixels.types import Box, Recognition, TextRecognizer, UInt8Array

Read = tuple[Box, Recognition]
"""A box and what was read in it."""

# boxes read with less confidence than this are looked at for lines within
SPLIT_BELOW = 0.8
# a row with less ink than this share of the inkiest row's is between lines
VALLEY_SHARE = 0.15
# a band of ink rows is a line when it is this tall, and at least this share of the tallest
MIN_BAND_PX = 4
BAND_SHARE = 0.5


def ink_rows(crop: UInt8Array) -> np.ndarray:
    """Share of ink per row of ``crop`` (Otsu's threshold; ink is the minority class)."""
    grey = crop.mean(axis=2).astype(np.uint8) if crop.ndim == 3 else crop
    _, ink = cv2.threshold(np.ascontiguousarray(grey), 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    if float(ink.mean()) > 0.5:
        ink = 1 - ink
    rows: np.ndarray = ink.mean(axis=1)
    return rows


def _bands(rows: np.ndarray) -> list[tuple[int, int]]:
    """Runs of rows with more ink than the valley share of the inkiest row."""
    on = rows > VALLEY_SHARE * float(rows.max())
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def line_cuts(crop: UInt8Array) -> list[int]:
    """Rows of ``crop`` to cut it at, one between each two lines of text (none: one line).

    Bands shorter than ``BAND_SHARE`` of the tallest (a descender, a sliver of the next line
    at the box's edge, an underline) are not lines; each cut lies midway through the valley
    between two lines.
    """
    if crop.shape[0] < 2 * MIN_BAND_PX or crop.size == 0:
        return []
    rows = ink_rows(crop)
    if float(rows.max()) <= 0.0:
        return []
    bands = _bands(rows)
    tallest = max(b - a for a, b in bands)
    lines = [(a, b) for a, b in bands if b - a >= max(MIN_BAND_PX, BAND_SHARE * tallest)]
    return [(upper[1] + lower[0]) // 2 for upper, lower in pairwise(lines)]


def _pieces(box: Box, cuts: Sequence[int]) -> list[Box]:
    edges = [box.y0, *(box.y0 + c for c in cuts), box.y1]
    return [Box(box.x0, top, box.x1, bottom) for top, bottom in pairwise(edges)]


def _candidates(image: UInt8Array, reads: Sequence[Read]) -> list[tuple[int, list[Box]]]:
    """Index and pieces of each poorly read, horizontal box that holds several lines."""
    out: list[tuple[int, list[Box]]] = []
    for n, (box, rec) in enumerate(reads):
        if rec.confidence >= SPLIT_BELOW or rec.rotation != 0 or box.width < box.height:
            continue
        cuts = line_cuts(image[box.y0 : box.y1, box.x0 : box.x1])
        if cuts:
            out.append((n, _pieces(box, cuts)))
    return out


def split_stacked(
    images: Sequence[UInt8Array], found: Sequence[Sequence[Read]], rec: TextRecognizer
) -> list[list[Read]]:
    """``found`` (what was read per image) with each poorly read box over several lines
    replaced by its lines, where every line reads more confidently than the box did (the
    pieces of all boxes are read in one call)."""
    todo = [
        (i, n, parts) for i, img in enumerate(images) for n, parts in _candidates(img, found[i])
    ]
    out = [list(reads) for reads in found]
    if not todo:
        return out
    crops = [images[i][p.y0 : p.y1, p.x0 : p.x1] for i, _, parts in todo for p in parts]
    recs = read_crops(crops, rec, direction_of(rec))
    at = 0
    readings: list[list[Read]] = []
    for _, _, parts in todo:
        readings.append(list(zip(parts, recs[at : at + len(parts)], strict=True)))
        at += len(parts)
    for (i, n, _), pieces in reversed(list(zip(todo, readings, strict=True))):
        if min(r.confidence for _, r in pieces) > found[i][n][1].confidence:
            out[i][n : n + 1] = pieces  # later boxes first: earlier indices stay valid
    return out
