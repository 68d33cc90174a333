"""OCR one display image and decide which parts of each text line are PHI.

Also the CPU detector, recogniser and direction classifier: the PP-OCR models (``ppocr_det`` /
``ppocr_rec`` / ``ppocr_cls`` of the model registry) run on this process's ONNX Runtime engines
from :mod:`dxai.engines`, where no :class:`InferenceClient` is available (the CPU pixel actor, the
CLI); ``inference.py`` holds the batched adapters.  Vertical and upside-down lines are read
turned (:mod:`dxai.actors.pixels.orient`); such a line is PHI as a whole or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import pairwise

import numpy as np

from dxai.actors.pixels.allow import all_text_spans
from dxai.actors.pixels.det import DetParams, detect_boxes
from dxai.actors.pixels.orient import direction_of, read_crops
from dxai.actors.pixels.phi import PhiTerms, TermHit, label_values, phi_spans, term_hits
from dxai.actors.pixels.rec import (
    cls_preprocess,
    ctc_decode,
    load_charset,
    pad_batch,
    rec_preprocess,
    width_groups,
)
from dxai.actors.pixels.stacked import split_stacked
from dxai.actors.pixels.tiles import detect_tiled
from dxai.actors.pixels.types import (
    Box,
    FloatArray,
    Recognition,
    TextDetector,
    TextRecognizer,
    UInt8Array,
)
from dxai.configs.schema.inference import EngineConfig
from dxai.engines import Engine, model_labels, packaged_registry, shared_engine
from dxai.observability.metrics import stage_span

DET_NAME = "ppocr_det"
REC_NAME = "ppocr_rec"
CLS_NAME = "ppocr_cls"
# crops per recogniser run on the CPU engine (grouped by similar width)
REC_BATCH = 16
# crops per direction classifier run (all 3 x 48 x 192)
CLS_BATCH = 16
# the classifier's label for upside-down text and its threshold when the registry names none
UPSIDE_DOWN = "180"
CLS_THRESHOLD = 0.9

WHOLE_LINE_SHARE = 0.85
# fragments closer than this many text heights are read as one line
GROUP_GAP = 1.5
# recognitions below this mean confidence are unreadable
UNREADABLE = 0.5
# boxes this similar on two frames of an instance hold the same overlay ...
SAME_BOX_IOU = 0.6
# ... when at most this share of their pixels moved by more than this many levels
CHANGED_LEVELS = 48
CHANGED_SHARE = 0.01
# a label's value goes on over at most this many lines below it (a long institution name)
MAX_CONTINUATION = 4
# the widest gap between two PHI boxes of one row that is filled too, in line heights
GAP_MAX_HEIGHTS = 3.0
# two boxes are on one row when their heights overlap by this share of the lower one
ROW_OVERLAP = 0.6


@dataclass(frozen=True)
class Line:
    """A detected text line and its recognition (read turned when ``rec.rotation`` says so)."""

    box: Box
    rec: Recognition


@dataclass(frozen=True)
class PhiBox:
    """A part of a line to fill, with the reason (never the text itself)."""

    box: Box
    reason: str


def read_lines(image: UInt8Array, det: TextDetector, rec: TextRecognizer) -> list[Line]:
    """Detect and recognise the text lines of one RGB image."""
    return read_images([image], det, rec)[0]


def iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    inter = a.intersection(b)
    union = a.area + b.area - inter
    return inter / union if union else 0.0


def read_images(
    images: Sequence[UInt8Array], det: TextDetector, rec: TextRecognizer
) -> list[list[Line]]:
    """Detect text on every image (frames of one instance), then recognise in one batch.

    A box found at the same place as one on an earlier image (IoU >= ``SAME_BOX_IOU``) with
    the same pixels there is not read again: a fixed overlay on every frame is read once.  Its
    fill applies to every frame anyway.  Where the pixels differ (a frame counter on a loop's
    projection, a name written on one frame where a marker stands on the others) it is read.
    Vertical and upside-down lines are read turned (:func:`read_crops`, with the recogniser's
    direction classifier when it has one); a poorly read box over several lines of small print
    is read line by line (:func:`~dxai.actors.pixels.stacked.split_stacked`).
    """
    found: list[list[Box]] = []
    crops: list[UInt8Array] = []
    with stage_span("ocr.detect", {"items": len(images)}):
        detected = detect_all(images, det)
    for image, boxes in zip(images, detected, strict=True):
        fresh = [b for b in boxes if not _seen(b, image, images, found)]
        crops += [image[b.y0 : b.y1, b.x0 : b.x1] for b in fresh]
        found.append(fresh)
    with stage_span("ocr.recognize", {"items": len(crops)}):
        recs = iter(read_crops(crops, rec, direction_of(rec)))
        reads = split_stacked(
            images, [[(box, next(recs)) for box in boxes] for boxes in found], rec
        )
    return [[Line(box, reading) for box, reading in group] for group in reads]


def _seen(
    box: Box, image: UInt8Array, images: Sequence[UInt8Array], found: Sequence[Sequence[Box]]
) -> bool:
    """Whether an earlier image had a box at ``box``'s place showing the same pixels."""
    for earlier, boxes in zip(images, found, strict=False):
        for other in boxes:
            if iou(box, other) >= SAME_BOX_IOU:
                region = (slice(box.y0, box.y1), slice(box.x0, box.x1))
                if same_pixels(image[region], earlier[region]):
                    return True
    return False


def same_pixels(a: UInt8Array, b: UInt8Array) -> bool:
    """Whether two crops show the same thing: lossy compression moves a few levels here and
    there; a changed character moves many pixels by far more (``CHANGED_LEVELS``)."""
    if a.shape != b.shape:
        return False
    moved = np.abs(a.astype(np.int16) - b.astype(np.int16)) > CHANGED_LEVELS
    return float(moved.mean()) <= CHANGED_SHARE


def detect_all(images: Sequence[UInt8Array], det: TextDetector) -> list[list[Box]]:
    """Boxes of every image; together when the detector can batch (``detect_many``); large
    images in tiles (:mod:`~dxai.actors.pixels.tiles`) when the detector has params."""

    def detect(items: Sequence[UInt8Array]) -> list[list[Box]]:
        many = getattr(det, "detect_many", None)
        if many is not None and len(items) > 1:
            return list(many(items))
        return [det.detect(image) for image in items]

    params = getattr(det, "params", None)
    if not isinstance(params, DetParams):
        return detect(images)
    return detect_tiled(images, params, detect)


def span_box(line: Line, start: int, end: int) -> Box:
    """Pixel box of characters ``start:end`` of a line.

    Characters are placed by their CTC time steps; the box reaches half-way to the next
    character outside the span that is not a space (at most one character width), or to the
    line's end.  A line read turned (``rec.rotation``) gives its whole box: its time steps do
    not run along x.
    """
    box, spans, text = line.box, line.rec.char_spans, line.rec.text
    if line.rec.rotation or not spans or len(spans) != len(text):
        return box
    width = box.width
    char_w = width / max(len(spans), 1)
    left, right = float(box.x0), float(box.x1)
    # the neighbours are the nearest characters that are not spaces: a space's time step comes
    # right after the glyph before it, and half-way to it would cut that glyph
    prev = next((i for i in range(start - 1, -1, -1) if not text[i].isspace()), None)
    nxt = next((i for i in range(end, len(text)) if not text[i].isspace()), None)
    if prev is not None:
        first = box.x0 + spans[start][0] * width
        before = box.x0 + spans[prev][1] * width
        left = max(first - char_w, (first + before) / 2.0)
    if nxt is not None:
        last = box.x0 + spans[end - 1][1] * width
        after = box.x0 + spans[nxt][0] * width
        right = min(last + char_w, (last + after) / 2.0)
    return Box(max(box.x0, int(left)), box.y0, min(box.x1, int(right + 0.999)), box.y1)


@dataclass(frozen=True)
class LineGroup:
    """Detected fragments of one text line, left to right, read as one string."""

    lines: tuple[Line, ...]

    @property
    def rotated(self) -> bool:
        """Whether this is a line read turned (such a line is a group of its own)."""
        return any(line.rec.rotation for line in self.lines)

    @property
    def text(self) -> str:
        """The fragments' texts joined by single spaces."""
        return " ".join(line.rec.text for line in self.lines)

    def offsets(self) -> list[tuple[int, int]]:
        """Character range of each fragment inside :attr:`text`."""
        out, pos = [], 0
        for line in self.lines:
            out.append((pos, pos + len(line.rec.text)))
            pos += len(line.rec.text) + 1
        return out

    @property
    def box(self) -> Box:
        """The box around all fragments."""
        boxes = [line.box for line in self.lines]
        return Box(
            min(b.x0 for b in boxes),
            min(b.y0 for b in boxes),
            max(b.x1 for b in boxes),
            max(b.y1 for b in boxes),
        )

    def starts(self) -> tuple[int, ...]:
        """Where each fragment's text begins in :attr:`text` (a label there needs no colon)."""
        return tuple(a for a, _ in self.offsets())


def _same_line(a: Box, b: Box) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    low, high = min(a.height, b.height), max(a.height, b.height)
    gap = b.x0 - a.x1
    return overlap >= 0.5 * low and gap <= GROUP_GAP * high and high <= 2.5 * low


def _joins(last: Line, line: Line) -> bool:
    """Whether ``line`` goes on the horizontal text line that ``last`` ends."""
    return not (last.rec.rotation or line.rec.rotation) and _same_line(last.box, line.box)


def group_lines(lines: Sequence[Line]) -> list[LineGroup]:
    """Fragments on the same text line with small gaps between them, grouped left to right.

    A line read turned is a group of its own.
    """
    groups: list[list[Line]] = []
    for line in sorted(lines, key=lambda item: (item.box.x0, item.box.y0)):
        for group in groups:
            if _joins(group[-1], line):
                group.append(line)
                break
        else:
            groups.append([line])
    return [LineGroup(tuple(g)) for g in groups]


def _char_width(line: Line) -> float:
    """Pixels per character along the direction the line reads."""
    along = line.box.height if line.rec.rotation in (90, 270) else line.box.width
    return along / max(len(line.rec.text), 1)


def _map_span(group: LineGroup, start: int, end: int) -> list[Box]:
    """Pixel boxes of group characters ``start:end``, bridging gaps between fragments."""
    parts: list[tuple[int, Box]] = []
    for i, ((a, b), line) in enumerate(zip(group.offsets(), group.lines, strict=True)):
        lo, hi = max(start, a) - a, min(end, b) - a
        if hi > lo:
            share = (hi - lo) / max(len(line.rec.text.strip()), 1)
            parts.append((i, line.box if share >= WHOLE_LINE_SHARE else span_box(line, lo, hi)))
    boxes = [box for _, box in parts]
    for (i, left), (j, right) in pairwise(parts):
        if j == i + 1 and right.x0 > left.x1:
            boxes.append(Box(left.x1, min(left.y0, right.y0), right.x0, max(left.y1, right.y1)))
    return boxes


def _extend(group: LineGroup, hit: TermHit, width: int) -> list[Box]:
    """Boxes over term characters the detector lost beyond the ends of the fragments read."""
    out: list[Box] = []
    for (a, b), line in zip(group.offsets(), group.lines, strict=True):
        grow = _char_width(line)
        if hit.missing_left and a <= hit.start <= a + 1:
            out.append(_beyond(line, True, (hit.missing_left + 1) * grow, width))
        if hit.missing_right and b - 1 <= hit.end <= b:
            out.append(_beyond(line, False, (hit.missing_right + 1) * grow, width))
    return [b for b in out if b.area]


# the side of its box where a line read turned by this many degrees begins
_START_SIDE = {0: "left", 90: "top", 180: "right", 270: "bottom"}
_OPPOSITE = {"left": "right", "right": "left", "top": "bottom", "bottom": "top"}


def _beyond(line: Line, before: bool, reach: float, width: int) -> Box:
    """The box ``reach`` pixels long just before a line's first character (``before``) or just
    after its last one, in the direction the line reads (``width``: the image width)."""
    box = line.box
    side = _START_SIDE[line.rec.rotation]
    side = side if before else _OPPOSITE[side]
    if side == "left":
        return Box(max(0, int(box.x0 - reach)), box.y0, box.x0, box.y1)
    if side == "right":
        return Box(box.x1, box.y0, min(width, int(box.x1 + reach + 0.999)), box.y1)
    if side == "top":
        return Box(box.x0, max(0, int(box.y0 - reach)), box.x1, box.y0)
    return Box(box.x0, box.y1, box.x1, int(box.y1 + reach + 0.999))


def decide(
    lines: Sequence[Line],
    terms: PhiTerms,
    redact_all: bool,
    allow: Sequence[re.Pattern[str]],
    width: int = 1 << 30,
    markers: Sequence[Box] = (),
) -> list[PhiBox]:
    """The PHI parts of ``lines`` as pixel boxes (``width``: the image width, for clipping).

    A line over one of ``markers`` (text kept on another image of the instance) is held to PHI
    evidence only, not to ``redact_all``: see :func:`decide_images`.  Each box is cut back
    where it overlaps a horizontal line above or below, so that the kept text of that line stays
    whole; boxes on lines read turned are never cut (stacked lines are horizontal ones).
    """
    out: list[PhiBox] = []
    turned: list[PhiBox] = []
    groups = group_lines(lines)
    for group in groups:
        all_text = redact_all and not any(covers_third(group.box, m) for m in markers)
        found = _group_phi(group, terms, all_text, allow, width)
        (turned if group.rotated else out).extend(found)
        out.extend(_unreadable_neighbours(group, found))
    out.extend(label_continuations(groups, allow))
    out.extend(gaps_between(out))
    kept = {n.box: _kept_parts(n.box, out) for n in lines if not n.rec.rotation}
    cut = [PhiBox(_clear_of(box.box, _stacked(box.box, kept)), box.reason) for box in out]
    return cut + turned


def _group_phi(
    group: LineGroup,
    terms: PhiTerms,
    redact_all: bool,
    allow: Sequence[re.Pattern[str]],
    width: int,
) -> list[PhiBox]:
    """The PHI boxes of one line group, with term characters the detector lost at its ends."""
    text = group.text
    found: list[PhiBox] = []
    for start, end, reason in phi_spans(text, terms, redact_all, allow, group.starts()):
        found.extend(PhiBox(box, reason) for box in _map_span(group, start, end))
    for hit in term_hits(text, terms):
        found.extend(PhiBox(box, hit.kind) for box in _extend(group, hit, width))
    return found


def _kept_parts(line: Box, found: Sequence[PhiBox]) -> list[Box]:
    """The parts of a line, left to right, that no PHI box found on it covers."""
    parts, x = [], line.x0
    for box in sorted((f.box for f in found if _inside(f.box, line)), key=lambda b: b.x0):
        if box.x0 > x:
            parts.append(Box(x, line.y0, box.x0, line.y1))
        x = max(x, box.x1)
    if x < line.x1:
        parts.append(Box(x, line.y0, line.x1, line.y1))
    return parts


def _stacked(box: Box, kept: dict[Box, list[Box]]) -> list[Box]:
    """The kept parts of the lines above and below ``box`` (not of the line it was found on)."""
    return [
        part
        for line, parts in kept.items()
        if not _inside(box, line) and not box.y0 <= (line.y0 + line.y1) // 2 < box.y1
        for part in parts
    ]


def decide_images(
    images: Sequence[Sequence[Line]],
    terms: PhiTerms,
    redact_all: bool,
    allow: Sequence[re.Pattern[str]],
    width: int = 1 << 30,
) -> list[PhiBox]:
    """The PHI boxes of every image OCRed for one instance (boxes apply to every frame).

    The first image is a frame as it is shown.  The others (further frames, the max and min
    projections of a cine loop, contrast-enhanced versions) show text the first one showed in
    another way: a projection superimposes a loop's frame counters into one unreadable glyph,
    an enhanced image reads ``W:800`` as ``V: 800``.  There a line over a marker the first image
    kept is held to PHI evidence (header values, labels, patterns) only.
    """
    if not images:
        return []
    first = decide(images[0], terms, redact_all, allow, width)
    kept = [n.box for n in images[0] if not any(_inside(b.box, n.box) for b in first)]
    out = list(first)
    for lines in images[1:]:
        out.extend(decide(lines, terms, redact_all, allow, width, kept))
    return out


def covers_third(box: Box, marker: Box) -> bool:
    """Whether ``box`` covers a third or more of ``marker`` (or ``marker`` of ``box``)."""
    return box.intersection(marker) * 3 >= min(box.area, marker.area) > 0


def label_continuations(
    groups: Sequence[LineGroup], allow: Sequence[re.Pattern[str]] = ()
) -> list[PhiBox]:
    """Lines that go on with the value of a label on a line above (a two-line institution).

    A value that runs to the end of its line goes on in the lines right below it that start at
    its left edge (or at the label's, when the label ends its line after a colon), have about
    its height, do not begin with a label of their own and are not markers of the allow list
    (``Zoom 1.5x`` under an accession number).  Lines read turned take no part.
    """
    out: list[PhiBox] = []
    flat = [g for g in groups if not g.rotated]
    candidates = [g for g in flat if not _only_markers(g.text, allow)]
    for group in flat:
        for x in _value_edges(group):
            above = group
            for _ in range(MAX_CONTINUATION):
                below = _line_below(candidates, above, x, group.box.height)
                if below is None:
                    break
                out.extend(PhiBox(line.box, "label_value") for line in below.lines)
                above = below
    return out


def _only_markers(text: str, allow: Sequence[re.Pattern[str]]) -> bool:
    """Whether ``text`` has letters and is made of allowed markers only."""
    has_letters = any(ch.isalpha() for ch in text)
    return bool(allow) and has_letters and not all_text_spans(text, allow)


def _value_edges(group: LineGroup) -> list[int]:
    """Left pixel edges of label values that reach the end of ``group``'s line."""
    text = group.text
    out: list[int] = []
    for label in label_values(text, group.starts()):
        if label.value_end < len(text.rstrip()):
            continue
        if label.value_end > label.value_start:
            boxes = _map_span(group, label.value_start, label.value_end)
        elif label.colon:
            boxes = _map_span(group, label.start, label.value_start)
        else:
            continue
        out.extend([min(b.x0 for b in boxes)] if boxes else [])
    return out


def _line_below(
    groups: Sequence[LineGroup], above: LineGroup, x: int, height: int
) -> LineGroup | None:
    """The line right below ``above`` that starts at pixel ``x`` and is about ``height`` tall."""
    top = above.box
    best: tuple[float, LineGroup] | None = None
    for group in groups:
        box = group.box
        drop = (box.y0 + box.y1 - top.y0 - top.y1) / 2.0
        if group is above or not 0.4 * height <= drop <= 1.6 * height:
            continue
        if not 0.67 * height <= box.height <= 1.5 * height or abs(box.x0 - x) > 0.75 * height:
            continue
        if _starts_with_label(group):
            continue
        if best is None or drop < best[0]:
            best = (drop, group)
    return best[1] if best else None


def _starts_with_label(group: LineGroup) -> bool:
    """Whether a line begins with a label of its own (``Age: 40``, ``Name SMITH``); a label
    word alone (the ``Hospital`` that ends an institution's name) is none."""
    head = len(group.text) - len(group.text.lstrip())
    return any(
        label.start == head and (label.colon or label.value_end > label.value_start)
        for label in label_values(group.text, group.starts())
    )


def _inside(box: Box, line: Box) -> bool:
    """True when most of ``box`` lies in ``line`` (the box was found on that line)."""
    return line.intersection(box) * 2 >= box.area


def _clear_of(box: Box, others: Sequence[Box]) -> Box:
    """``box`` cut back where it overlaps text lines above or below that are not PHI.

    Detector boxes are padded; stacked lines' boxes overlap.  The cut is at the middle of the
    overlap, so each line keeps its own half.
    """
    y0, y1 = box.y0, box.y1
    for other in others:
        if min(box.x1, other.x1) <= max(box.x0, other.x0):
            continue
        if other.y0 < y1 <= other.y1 and other.y0 > y0:
            y1 = (other.y0 + y1) // 2
        if other.y0 <= y0 < other.y1 and other.y1 < y1:
            y0 = (y0 + other.y1 + 1) // 2
    return Box(box.x0, y0, box.x1, y1)


def gaps_between(found: Sequence[PhiBox]) -> list[PhiBox]:
    """The short gaps between two PHI boxes on one text row, as PHI (fail closed).

    The detector sometimes splits a line and leaves out what stood between the pieces (a sex
    marker ``[M]`` between a name and a date, read at another scale); what stands between two
    PHI values on one row, no wider than ``GAP_MAX_HEIGHTS`` line heights, is filled too.
    """
    out: list[PhiBox] = []
    boxes = sorted({f.box for f in found}, key=lambda b: b.x0)
    for i, left in enumerate(boxes):
        right = next((b for b in boxes[i + 1 :] if _same_row(left, b) and b.x0 >= left.x1), None)
        if right is None:
            continue
        height = min(left.height, right.height)
        if 0 < right.x0 - left.x1 <= GAP_MAX_HEIGHTS * height:
            y0, y1 = max(left.y0, right.y0), min(left.y1, right.y1)
            out.append(PhiBox(Box(left.x1, y0, right.x0, y1), "between_phi"))
    return out


def _same_row(a: Box, b: Box) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    return overlap >= ROW_OVERLAP * min(a.height, b.height)


def _unreadable_neighbours(group: LineGroup, found: Sequence[PhiBox]) -> list[PhiBox]:
    """Fragments read with low confidence right next to PHI on the same line (fail closed).

    The box reaches over the gap to the PHI fragment: a label and its value are one string.
    """
    out: list[PhiBox] = []
    for i, line in enumerate(group.lines):
        if line.rec.confidence >= UNREADABLE or any(line.box.intersection(f.box) for f in found):
            continue
        near = [n for n in group.lines[max(i - 1, 0) : i + 2] if n is not line]
        for other in near:
            if any(other.box.intersection(f.box) for f in found):
                a, b = line.box, other.box
                pad = a.height // 2  # the outer edge of unreadable text is uncertain too
                x0, x1 = (max(0, a.x0 - pad), b.x0) if a.x0 < b.x0 else (b.x1, a.x1 + pad)
                out.append(PhiBox(Box(x0, a.y0, x1, a.y1), "unreadable"))
    return out


def cpu_ocr_engine(model: str, threads: int, max_batch: int) -> Engine:
    """The process-wide ONNX Runtime CPU engine of OCR model ``model`` (no InferenceClient).

    ``threads`` intra-op threads (``pixels.ocr_threads``).  Inputs are not padded to buckets:
    image and crop sizes change on nearly every call.
    """
    config = EngineConfig(
        kind="onnxruntime", device="cpu", intra_op_threads=threads, inter_op_threads=1
    )
    return shared_engine(model, config, max_batch, variable_shapes=True)


class EngineTextDetector:
    """PP-OCRv4 DB text detector on this process's ONNX Runtime CPU engine."""

    def __init__(self, params: DetParams | None = None, threads: int = 1) -> None:
        self.params = params or DetParams()
        self._engine = cpu_ocr_engine(DET_NAME, threads, max_batch=1)

    def run_prob(self, chw: FloatArray) -> FloatArray:
        """Probability map (H x W) for one pre-processed CHW image."""
        out = self._engine.infer(chw[np.newaxis])
        return np.asarray(out[0, 0], dtype=np.float32)

    def detect(self, image: UInt8Array) -> list[Box]:
        """Text line boxes in ``image`` pixel coordinates."""
        return detect_boxes(image, self.params, self.run_prob)


class EngineDirectionClassifier:
    """PP-OCR text direction classifier (labels ``0`` and ``180``) on this process's ONNX
    Runtime CPU engine; a crop is upside down when ``180`` scores at least the registry's
    ``cls_thresh``.  Also the batched pipeline's: it is small, and a node need not serve it."""

    def __init__(self, threads: int = 1) -> None:
        self._engine = cpu_ocr_engine(CLS_NAME, threads, CLS_BATCH)
        spec = packaged_registry().get(CLS_NAME)
        self._flip = model_labels(spec, self._engine).index(UPSIDE_DOWN)
        self.threshold = spec.thresholds.get("cls_thresh", CLS_THRESHOLD)

    def upside_down(self, crops: list[UInt8Array]) -> list[bool]:
        """Per crop, whether its text is turned by 180 degrees; batches of ``CLS_BATCH``."""
        out: list[bool] = []
        for start in range(0, len(crops), CLS_BATCH):
            batch = np.stack([cls_preprocess(c) for c in crops[start : start + CLS_BATCH]])
            probs = np.asarray(self._engine.infer(batch), dtype=np.float32)
            out.extend(
                bool(row.argmax() == self._flip and row[self._flip] >= self.threshold)
                for row in probs
            )
        return out


class EngineTextRecognizer:
    """PP-OCRv4 CRNN/SVTR recogniser on this process's ONNX Runtime CPU engine, CTC greedy.

    ``direction``: the direction classifier :func:`read_images` asks about unsure crops.
    """

    def __init__(self, threads: int = 1) -> None:
        self._engine = cpu_ocr_engine(REC_NAME, threads, REC_BATCH)
        self.charset = engine_charset(self._engine)
        sha256 = packaged_registry().get(REC_NAME).sha256
        self.cache_identity = f"{self._engine.info.backend}:{REC_NAME}:{sha256}"
        self.direction = EngineDirectionClassifier(threads)

    def run_batch(self, batch: FloatArray) -> FloatArray:
        """Softmax maps (N x T x C) for a padded batch."""
        return self._engine.infer(batch)

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        """Read each crop; crops are batched by similar width to limit padding."""
        items = [rec_preprocess(c) for c in crops]
        results: list[Recognition] = [Recognition("", 0.0)] * len(items)
        for chunk in width_groups([item.shape[2] for item in items], REC_BATCH):
            probs = self.run_batch(pad_batch([items[i] for i in chunk]))
            for row, i in enumerate(chunk):
                results[i] = ctc_decode(probs[row], self.charset, items[i].shape[2])
        return results


def engine_charset(engine: Engine) -> list[str]:
    """The CTC classes of the recogniser loaded in ``engine`` (its ``character`` metadata)."""
    return load_charset(model_labels(packaged_registry().get(REC_NAME), engine))


@lru_cache(maxsize=1)
def rec_charset() -> list[str]:
    """The recogniser's CTC classes, read from the registered model's metadata."""
    return engine_charset(cpu_ocr_engine(REC_NAME, 1, REC_BATCH))
