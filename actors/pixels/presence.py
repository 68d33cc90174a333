"""A cheap text-presence pass over every frame: which instances of a series need full OCR.

Full OCR (detector at full resolution, recogniser, PHI decision, verify) costs about a hundred
milliseconds per CT slice on a CPU; reading a slice's header and pixels costs one or two.  The
``presence`` scan action (``actors/outbound/series.py``) runs this pass on every instance of a
CT/MR/PT/NM/MG series and OCRs only those it flags:

1. **Structural cues** (:func:`structural_risk`) flag an instance from its ORIGINAL header alone:
   ``BurnedInAnnotation`` YES, ``ImageType`` DERIVED / SECONDARY / LOCALIZER, a series or
   protocol named scout / localizer / topogram / surview, a dose screen, a secondary capture.
2. **Text lines** (:func:`text_lines`): on each display image the redactor would OCR (same
   window; the CLAHE view too for wide windows), a morphological top-hat / black-hat keeps
   thin bright / dark strokes; their connected components of character size are chained into
   lines (similar heights, vertical overlap, gaps under a character height, three or more,
   at least 2.5 times wider than tall).  Vectorised with OpenCV and numpy: about two
   milliseconds for a 512 x 512 frame.
3. **Confirmation** (:func:`text_likely` with a detector): anatomy (a row of vessels, bony
   fragments, correlated noise) also forms such lines.  A crop around each candidate line goes
   to the PP-OCR detector (the redactor's own, batched in the daemon); the frame is flagged when
   it finds a text-shaped box there.  Clean frames have no candidate and never reach the model.
4. **Corners** (:func:`corner_stats`, :func:`corner_outliers`): the four corners of every frame
   are summarised (mean, spread, share of sharp edges); a frame whose corners differ from the
   rest of its series is flagged even when no line was seen.

``bench/presence.py`` measures the candidates (statistics alone, confirmation, the detector
alone at low and full resolution) for speed and recall; docs/pixels.md has the figures.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dxai.actors.pixels import codec
from dxai.actors.pixels.render import (
    CLAHE_CLIP,
    DisplayInfo,
    display_info,
    mono_to_unit,
    to_display,
    wide_window,
)
from dxai.actors.pixels.types import Box, FloatArray, TextDetector, UInt8Array
from dxai.configs.errors import DxaiError

STROKE_KERNEL = 9  # strokes thinner than this survive the top-hat
STROKE_CONTRAST = 40  # display levels a stroke stands out from its surroundings
CHAR_MIN_H, CHAR_MAX_H = 4, 40  # character heights looked for (display pixels, per level)
MAX_SIDE = 1024  # larger images are looked at downscaled
MAX_COMPONENTS = 800  # more stroke components than this: treat as text (too busy to tell)
LINE_MIN_CHARS = 3
LINE_MIN_ASPECT = 2.5
CONFIRM_PAD = 3.0  # crop margin around a candidate line, in character heights
CONFIRM_MIN_PAD = 8
CONFIRM_ASPECT = 1.5  # a detector box this much wider than tall confirms text
CORNER_ROWS, CORNER_COLS = 6, 4  # a corner is 1/6 of the rows by 1/4 of the columns
SHARP_STEP = 40  # a pixel this far from its 3x3 mean is a sharp edge
# a corner feature differs from the series when it is this far from the series median, in
# units of max(floor, 3 x robust spread): mean level, spread, share of sharp edges
CORNER_FLOORS = np.array([12.0, 8.0, 0.01], dtype=np.float64)
CORNER_MIN_FRAMES = 3

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
_SCOUT = re.compile(r"scout|locali[sz]er|topogram|surview|scanogram|scanoscope", re.IGNORECASE)
_DOSE = re.compile(r"dose|patient protocol|screen ?(save|capture)", re.IGNORECASE)


NO_CORNERS: FloatArray = np.zeros((0, 4, 3), dtype=np.float32)


@dataclass(frozen=True)
class Probe:
    """The presence pass over one instance: why it needs full OCR (None: it does not, as far
    as this pass can tell) and the corner statistics of each frame (``F x 4 x 3``)."""

    reason: str | None
    corners: FloatArray

    @property
    def likely(self) -> bool:
        """True when the instance should be OCRed in full (corners aside)."""
        return self.reason is not None


def structural_risk(ds: Dataset) -> str | None:
    """Why the header alone says burned-in text is likely (None: nothing says so).

    Read the ORIGINAL header: de-identification may rewrite the descriptions.
    """
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "burned_in_annotation"
    image_type = {str(v).strip().upper() for v in _values(ds.get("ImageType"))}
    if "LOCALIZER" in image_type:
        return "localizer"
    if image_type & {"DERIVED", "SECONDARY"}:
        return "derived_image"
    if str(ds.get("SOPClassUID", "")).startswith(SECONDARY_CAPTURE_PREFIX):
        return "secondary_capture"
    names = " ".join(str(ds.get(k, "")) for k in ("SeriesDescription", "ProtocolName"))
    if _SCOUT.search(names):
        return "localizer"
    if _DOSE.search(names):
        return "dose_screen"
    return None


def _values(value: object) -> list[object]:
    if value is None or value == "":
        return []
    if isinstance(value, str | bytes):
        return [value]
    try:
        return [*value]  # type: ignore[misc]
    except TypeError:
        return [value]


def grey(image: UInt8Array) -> UInt8Array:
    """The grey levels of an RGB display image (or the image itself when already grey)."""
    if image.ndim == 2:
        return image
    return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)


def _components(mask: UInt8Array) -> npt.NDArray[np.int64]:
    """Stats rows (x, y, w, h, area) of the 8-connected components of a 0/1 mask.

    ``cv2.connectedComponentsWithStats`` costs twice as much on the sparse masks seen here.
    """
    count, labels = cv2.connectedComponents(mask, connectivity=8)
    points = cv2.findNonZero(mask)
    if points is None or count <= 1:
        return np.zeros((0, 5), dtype=np.int64)
    xy = np.asarray(points, dtype=np.int64).reshape(-1, 2)
    xs, ys = xy[:, 0], xy[:, 1]
    label: npt.NDArray[np.int64] = np.asarray(labels, dtype=np.int64)[ys, xs]
    x0, y0 = np.full(count, 1 << 30, dtype=np.int64), np.full(count, 1 << 30, dtype=np.int64)
    x1, y1 = np.full(count, -1, dtype=np.int64), np.full(count, -1, dtype=np.int64)
    np.minimum.at(x0, label, xs)
    np.minimum.at(y0, label, ys)
    np.maximum.at(x1, label, xs)
    np.maximum.at(y1, label, ys)
    area = np.bincount(label, minlength=count)
    return np.stack([x0, y0, x1 - x0 + 1, y1 - y0 + 1, area], axis=1)[1:]


def _char_components(mask: UInt8Array) -> npt.NDArray[np.int64]:
    """Stats rows (x, y, w, h, area) of the character-sized components of a stroke mask."""
    st = _components(mask)
    w, h, area = st[:, 2], st[:, 3], st[:, 4]
    keep = (h >= CHAR_MIN_H) & (h <= CHAR_MAX_H) & (w <= 2 * h + 2) & (area >= 3)
    return st[keep]


def _chain(st: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """A label per component: components chained side by side on one line share a label."""
    x, y, w, h = (st[:, i].astype(np.float64) for i in range(4))
    hmax, hmin = np.maximum.outer(h, h), np.minimum.outer(h, h)
    overlap = np.minimum.outer(y + h, y + h) - np.maximum.outer(y, y)
    gap = np.maximum.outer(x, x) - np.minimum.outer(x + w, x + w)
    adjacent = (hmin >= 0.4 * hmax) & (overlap >= 0.5 * hmin) & (gap <= hmax) & (gap >= -0.3 * hmin)
    n = len(st)
    labels = np.arange(n)
    for _ in range(n):  # min-label propagation to a fixed point (connected components)
        lowest = np.where(adjacent, labels[np.newaxis, :], n).min(axis=1)
        new = np.minimum(labels, lowest)
        new = new[new]
        if np.array_equal(new, labels):
            break
        labels = new
    return labels


def _lines(st: npt.NDArray[np.int64], scale: float) -> list[Box]:
    """Boxes (in original image pixels) of the chains that are shaped like a text line."""
    out: list[Box] = []
    if len(st) < LINE_MIN_CHARS:
        return out
    labels = _chain(st)
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        if len(idx) < LINE_MIN_CHARS:
            continue
        x0, y0 = int(st[idx, 0].min()), int(st[idx, 1].min())
        x1 = int((st[idx, 0] + st[idx, 2]).max())
        y1 = int((st[idx, 1] + st[idx, 3]).max())
        height = float(np.median(st[idx, 3]))
        if x1 - x0 < LINE_MIN_ASPECT * (y1 - y0) or y1 - y0 > 2 * height + 2:
            continue
        out.append(Box(*(round(v / scale) for v in (x0, y0, x1, y1))))
    return out


def text_lines(image: UInt8Array) -> list[Box]:
    """Candidate text lines of one display image (RGB or grey), in its pixel coordinates.

    An image too busy to tell (more than ``MAX_COMPONENTS`` strokes) gives one box: itself.
    """
    g = grey(image)
    scale = min(1.0, MAX_SIDE / max(g.shape))
    if scale < 1.0:
        g = np.asarray(cv2.resize(g, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (STROKE_KERNEL, STROKE_KERNEL))
    found: list[Box] = []
    for op in (cv2.MORPH_TOPHAT, cv2.MORPH_BLACKHAT):
        strokes = cv2.morphologyEx(g, op, kernel)
        mask = np.asarray(cv2.threshold(strokes, STROKE_CONTRAST - 1, 1, cv2.THRESH_BINARY)[1])
        st = _char_components(mask.astype(np.uint8))
        if len(st) > MAX_COMPONENTS:
            return [Box(0, 0, int(image.shape[1]), int(image.shape[0]))]
        found += _lines(st, scale)
    return found


def text_likely(
    image: UInt8Array, info: DisplayInfo | None = None, detector: TextDetector | None = None
) -> bool:
    """Whether one display image (RGB or grey) likely shows burned-in text.

    Without a ``detector`` any candidate line says yes.  With one, a crop around each candidate
    goes to it, and a text-shaped box in any crop says yes.  ``info`` is accepted for symmetry
    with :func:`display_images` (the image is already a display image).
    """
    del info
    lines = text_lines(image)
    if not lines or detector is None:
        return bool(lines)
    return confirm(image, lines, detector)


def confirm(image: UInt8Array, lines: Sequence[Box], detector: TextDetector) -> bool:
    """Whether the detector finds a text-shaped box in a crop around any candidate line."""
    from dxai.actors.pixels.ocr import detect_all

    rows, cols = int(image.shape[0]), int(image.shape[1])
    crops: list[UInt8Array] = []
    for box in lines:
        pad = max(CONFIRM_MIN_PAD, int(CONFIRM_PAD * box.height))
        crop = box.expand(pad, cols, rows)
        part = image[crop.y0 : crop.y1, crop.x0 : crop.x1]
        rgb = part if part.ndim == 3 else np.repeat(part[..., np.newaxis], 3, axis=2)
        crops.append(np.ascontiguousarray(rgb))
    found = detect_all(crops, detector)
    return any(b.width >= CONFIRM_ASPECT * b.height for boxes in found for b in boxes)


def display_grey(frame: npt.NDArray[np.generic], info: DisplayInfo) -> UInt8Array:
    """The grey levels of the display image the redactor OCRs for one frame."""
    if info.colour or info.palette is not None:
        return grey(to_display(frame, info))
    return np.round(mono_to_unit(frame, info) * 255).astype(np.uint8)


def display_images(frames: npt.NDArray[np.generic], info: DisplayInfo) -> list[UInt8Array]:
    """Per frame, the (grey) display images the redactor would OCR: the display, plus its
    local-contrast (CLAHE) version for wide windows."""
    twice = wide_window(info, frames.dtype)
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(8, 8)) if twice else None
    out: list[UInt8Array] = []
    for frame in frames:
        display = display_grey(frame, info)
        out.append(display)
        if clahe is not None:
            out.append(np.asarray(clahe.apply(display), dtype=np.uint8))
    return out


def corner_stats(image: UInt8Array) -> FloatArray:
    """Mean level, spread and share of sharp edges of the four corners (``4 x 3``)."""
    g = grey(image)
    rows, cols = g.shape
    dr, dc = max(1, rows // CORNER_ROWS), max(1, cols // CORNER_COLS)
    sharp = cv2.absdiff(g, cv2.blur(g, (3, 3))) >= SHARP_STEP
    top, bottom = slice(0, dr), slice(rows - dr, rows)
    left, right = slice(0, dc), slice(cols - dc, cols)
    out = np.zeros((4, 3), dtype=np.float32)
    for i, (ys, xs) in enumerate(((top, left), (top, right), (bottom, left), (bottom, right))):
        patch = g[ys, xs]
        out[i] = (float(patch.mean()), float(patch.std()), float(sharp[ys, xs].mean()))
    return out


def corner_outliers(stats: Sequence[FloatArray]) -> list[bool]:
    """Per member (its frames' ``F x 4 x 3`` corner stats): whether any of its frames' corners
    differ from the series' others.  Fewer than ``CORNER_MIN_FRAMES`` frames: none differ."""
    sizes = [len(s) for s in stats]
    if sum(sizes) < CORNER_MIN_FRAMES:
        return [False] * len(stats)
    flat = np.concatenate([np.asarray(s, dtype=np.float64) for s in stats if len(s)])
    median = np.median(flat, axis=0)
    spread = 1.4826 * np.median(np.abs(flat - median), axis=0)
    scale = np.maximum(CORNER_FLOORS, 3.0 * spread)
    odd = (np.abs(flat - median) > scale).any(axis=(1, 2))
    out: list[bool] = []
    start = 0
    for size in sizes:
        out.append(bool(odd[start : start + size].any()))
        start += size
    return out


def probe_frames(
    frames: npt.NDArray[np.generic],
    info: DisplayInfo,
    detector: TextDetector | None = None,
    *,
    look: bool = True,
) -> Probe:
    """The presence pass over decoded frames: ``text`` when any display image likely shows
    text (not looked for when ``look`` is False); the corners of each frame's first image."""
    images = display_images(frames, info)
    per_frame = len(images) // max(1, len(frames))
    corners = np.stack([corner_stats(images[i]) for i in range(0, len(images), per_frame)])
    likely = look and any(text_likely(image, detector=detector) for image in images)
    return Probe("text" if likely else None, corners)


def probe_dataset(ds: Dataset, detector: TextDetector | None = None) -> Probe:
    """The presence pass over one instance read in full (its ORIGINAL header and pixels).

    A structural cue decides alone (its corners are still measured for the series); pixels
    that cannot be decoded say ``undecodable`` (full processing then reports the failure).
    """
    reason = structural_risk(ds)
    if "PixelData" not in ds:
        return Probe(reason, NO_CORNERS)
    try:
        decoded = codec.decode(ds)
    except DxaiError:
        return Probe("undecodable", NO_CORNERS)
    probe = probe_frames(
        decoded.frames, display_info(ds, decoded.palette), detector, look=reason is None
    )
    return probe if reason is None else Probe(reason, probe.corners)
