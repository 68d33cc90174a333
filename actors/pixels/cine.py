"""Cine loops read through projections: what a projection blurs over a kept marker is read
again frame by frame instead of holding the instance.

A loop with more distinct frames than ``max_ocr_frames`` is OCRed on its first frame plus its
temporal max and min projections (``frames.projections``), which show anything any frame shows.
A marker that changes from frame to frame (the frame counter ``1/10`` ... ``10/10``, a time
stamp, a heart rate) superimposes into a glyph there that reads as garbage: unsure, it held
every such loop (``low_confidence``); read with some confidence (``IOH``), it released whatever
one frame showed at that place (a name written over the counter on frame 6).  So every region
of a projection over a marker the first frame kept, where the pixels differ from the first
frame's and the projection does not clearly read as the marker itself, is read again on every
distinct frame, over the region and over the marker's own box (one recogniser batch of small
crops).  A frame holds when the region reads PHI evidence (a header value, a label, a date or
age pattern) or, in ``redact_all_text`` mode, text the allow list does not keep that is not the
first frame's marker with other characters (``8/10`` misread ``B/10`` is the counter, ``SMITH``
is not); and when the region reads unsure or as nothing while the marker's own box does not read
clearly as the marker (speckle beside a counter can spoil the region's reading; nothing read
where text stands is never taken as clean).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from rapidfuzz import fuzz

from dxai.actors.pixels.frames import distinct_frames
from dxai.actors.pixels.ocr import covers_third
from dxai.actors.pixels.orient import direction_of, read_crops
from dxai.actors.pixels.render import DisplayInfo, to_display
from dxai.actors.pixels.types import Box, Recognition, TextRecognizer, UInt8Array
from dxai.configs.phi import normalise

# a loop with more distinct frames than this is not read frame by frame (the hold stays)
MAX_FRAMES = 64
# a frame's reading at least this similar (rapidfuzz ratio) to the first frame's marker is
# that marker changing (a counter, a time); anything else there is text in its own right
SAME_MARKER_RATIO = 60
# a projection read at least this confidently and this similar to the marker shows the marker
CLEAR_CONFIDENCE = 0.9
CLEAR_MARKER_RATIO = 90


def marker_under(box: Box, markers: Sequence[tuple[Box, str]]) -> tuple[Box, str] | None:
    """The marker (box, text) ``box`` covers a third or more of (or that covers a third of
    ``box``), if any; ``markers``: (box, text) of the lines the first frame kept."""
    return next(((m, text) for m, text in markers if covers_third(box, m)), None)


def shows_marker(reading: Recognition, marker: str) -> bool:
    """Whether a projection reads as the first frame's marker itself, clearly: every frame shows
    the same text there (a character changed on any frame would blur the max projection)."""
    similar = fuzz.ratio(normalise(reading.text), normalise(marker)) >= CLEAR_MARKER_RATIO
    return reading.confidence >= CLEAR_CONFIDENCE and similar


def same_marker(reading: str, marker: str) -> bool:
    """Whether a frame's reading is the first frame's marker with other digits or a misread
    character (``8/10`` read ``B/10`` where the marker was ``1/10``), not other text."""
    return fuzz.ratio(normalise(reading), normalise(marker)) >= SAME_MARKER_RATIO


def read_on_frames(
    frames: npt.NDArray[np.generic],
    info: DisplayInfo,
    boxes: Sequence[Box],
    recognizer: TextRecognizer,
) -> list[list[Recognition]] | None:
    """Per box, its reading on every distinct frame; None when the loop has too many."""
    distinct = distinct_frames(frames)
    if len(distinct) > MAX_FRAMES or not boxes:
        return None
    crops: list[UInt8Array] = []
    # 8-bit colour and palette displays are per pixel: the crop of a display is the display of
    # the crop; a monochrome window or a wider colour range may depend on the whole frame
    pointwise = info.palette is not None or (info.colour and frames.dtype == np.uint8)
    for index in distinct:
        frame = frames[index]
        if pointwise:
            crops += [to_display(frame[b.y0 : b.y1, b.x0 : b.x1], info) for b in boxes]
            continue
        display = to_display(frame, info)
        crops += [np.ascontiguousarray(display[b.y0 : b.y1, b.x0 : b.x1]) for b in boxes]
    recs = read_crops(crops, recognizer, direction_of(recognizer))
    return [recs[i :: len(boxes)] for i in range(len(boxes))]
