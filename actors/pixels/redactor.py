"""The pixel PHI pipeline for one dataset: decode, OCR, decide, fill, verify, write back."""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
from pydicom import uid
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from dxai.actors.pixels import codec
from dxai.actors.pixels.cine import (
    marker_under,
    read_on_frames,
    same_marker,
    shows_marker,
)
from dxai.actors.pixels.det import det_params
from dxai.actors.pixels.frames import (
    distinct_frames,
    fill_boxes,
    fill_value,
    projections,
    sample_frames,
)
from dxai.actors.pixels.known_regions import REASON as KNOWN_REGION
from dxai.actors.pixels.known_regions import library_for
from dxai.actors.pixels.ocr import Line, PhiBox, decide_images, read_images
from dxai.actors.pixels.orient import direction_of, read_crops
from dxai.actors.pixels.phi import PhiTerms, build_terms, compile_allow, legible_phi
from dxai.actors.pixels.rec_cache import with_cache
from dxai.actors.pixels.render import (
    DisplayInfo,
    display_info,
    enhance,
    to_display,
    wide_window,
)
from dxai.actors.pixels.report import PixelReport, RedactedBox
from dxai.actors.pixels.second_reader import REASON as SECOND_READER
from dxai.actors.pixels.second_reader import SecondReader, build_second_reader
from dxai.actors.pixels.types import (
    Box,
    Recognition,
    ScanRequest,
    TextDetector,
    TextRecognizer,
    UInt8Array,
)
from dxai.configs.errors import DxaiError
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.observability.metrics import Sensor, stage_span

CLEAN_PIXEL_CODE = ("113101", "DCM", "Clean Pixel Data Option")
# annotation lines are at most this tall: the larger of a fixed height and a share of the rows
LINE_MAX_HEIGHT_PX = 64
LINE_MAX_HEIGHT_SHARE = 0.12
MIN_LINE_CHARS = 3
LOW = "low_confidence"
# a fill over this share of a line's height covers those columns (what is left is too thin)
COVERED_HEIGHT = 0.7
MIN_CHAR_WIDTH_PX = 4
# the longest failure message a report carries
ERROR_CHARS = 200


@dataclass
class _Work:
    """State of one instance while it is processed."""

    ds: Dataset
    decoded: codec.DecodedPixels
    info: DisplayInfo
    # the plain displays of the OCRed images once filled (the verify and the second reader)
    filled: list[UInt8Array] | None = None
    # the frames OCRed (distinct ones, sampled); with ``projected``, a loop's first frame
    # read with its max and min projections
    chosen: list[int] = field(default_factory=list)
    projected: bool = False


class PixelRedactor:
    """Finds and removes burned-in PHI text; CPU-bound and synchronous (run it in a thread)."""

    def __init__(
        self,
        policy: PixelPolicyConfig | None = None,
        detector: TextDetector | None = None,
        recognizer: TextRecognizer | None = None,
        sensor: Sensor | None = None,
        second_reader: SecondReader | None = None,
    ) -> None:
        """Models default to the CPU ONNX Runtime ones; ``sensor`` counts OCR cache lookups
        (default: the process-wide sensor; the daemon passes its own).  ``second_reader``
        defaults to the policy's (``second_reader``; ConfigError when it cannot load)."""
        self.policy = policy or PixelPolicyConfig()
        self._known = library_for(self.policy)  # ConfigError when its script does not parse
        self.second_reader = second_reader or build_second_reader(
            self.policy.second_reader if self.policy.verify else "none",
            self.policy.tessdata_dir,
        )
        if detector is None or recognizer is None:
            from dxai.actors.pixels.ocr import EngineTextDetector, EngineTextRecognizer

            params = det_params(self.policy)
            threads = self.policy.ocr_threads
            detector = detector or EngineTextDetector(params, threads=threads)
            recognizer = recognizer or EngineTextRecognizer(threads=threads)
        self.detector: TextDetector = detector
        self.recognizer: TextRecognizer = with_cache(
            recognizer, self.policy.rec_cache_entries, sensor
        )
        self._allow = compile_allow(self.policy.allow_list)

    def should_scan(self, ds: Dataset, request: ScanRequest = "auto") -> bool:
        """Whether the risk policy scans this instance (``sample`` and ``presence`` count as yes
        here: the series plan decides which of their instances are OCRed)."""
        if "PixelData" not in ds:
            return False
        if request == "always":
            return True
        modality = str(ds.get("Modality", "")).upper()
        action = self.policy.scan_action(modality, str(ds.get("SOPClassUID", "")))
        return action != "skip"

    def redact_dataset(
        self,
        ds: Dataset,
        phi_values: Sequence[str],
        request: ScanRequest = "auto",
        *,
        known: Sequence[Box] | None = None,
        flagged: bool = False,
    ) -> PixelReport:
        """Redact PHI text in ``ds`` in place and return what was done.

        ``phi_values`` are the PHI strings of the ORIGINAL header (see ``phi.phi_values``).
        On ``held`` the pixels are redacted as far as possible but must not be released.
        ``known``: the known PHI regions matched on the ORIGINAL header (:meth:`known_regions`);
        None matches ``ds``.  They are blanked before OCR, and also when the policy skips ``ds``.
        ``flagged``: the ORIGINAL header says ``BurnedInAnnotation`` YES (the de-identified
        ``ds`` may not say so any more); the policy's ``burned_in_mode`` then decides what is PHI.
        """
        start = time.perf_counter()
        report = PixelReport(status="skipped", sop_instance_uid=str(ds.get("SOPInstanceUID", "")))
        report.transfer_syntax_in = str(codec.transfer_syntax(ds))
        if not self.should_scan(ds, request):
            return self.redact_known_regions(ds, known)
        try:
            regions = self.known_regions(ds) if known is None else known
            self._process(ds, phi_values, report, regions, flagged)
        except DxaiError as exc:
            report.status, report.error_code = "failed", exc.code
            report.error = str(exc)[:ERROR_CHARS]
        report.transfer_syntax_out = str(codec.transfer_syntax(ds))
        report.seconds = time.perf_counter() - start
        return report

    def known_regions(self, ds: Dataset) -> list[Box]:
        """The known PHI regions (``pixel_policy.known_regions_file``) of the rules that the
        header of ``ds`` matches.  Match the ORIGINAL header: de-identification removes some of
        the attributes rules read (``SeriesDescription``, ``CommentsOnRadiationDose``)."""
        if self._known is None or "PixelData" not in ds:
            return []
        return self._known.match(ds)

    def redact_known_regions(self, ds: Dataset, known: Sequence[Box] | None = None) -> PixelReport:
        """Blank only the known regions of an instance that is not OCRed (policy ``skip``, or
        deferred by a ``sample`` series plan); the pixels are decoded only when a rule matched.

        Nothing was read, so the status stays ``skipped`` (the caller's rules for unscanned
        instances still apply), with the blanked boxes; ``failed`` when they cannot be written.
        """
        start = time.perf_counter()
        report = PixelReport(status="skipped", sop_instance_uid=str(ds.get("SOPInstanceUID", "")))
        report.transfer_syntax_in = str(codec.transfer_syntax(ds))
        regions = self.known_regions(ds) if known is None else known
        if regions and "PixelData" in ds:
            try:
                decoded = codec.decode(ds)
                work = _Work(ds, decoded, display_info(ds, decoded.palette))
                report.boxes = _blank_known(work, regions)
                report.scan_action, report.frames = "known_regions", int(decoded.frames.shape[0])
                codec.encode(ds, decoded)
            except DxaiError as exc:
                report.status, report.error_code = "failed", exc.code
                report.error = str(exc)[:ERROR_CHARS]
        report.transfer_syntax_out = str(codec.transfer_syntax(ds))
        report.seconds = time.perf_counter() - start
        return report

    def _process(
        self,
        ds: Dataset,
        phi_values: Sequence[str],
        report: PixelReport,
        known: Sequence[Box],
        flagged: bool = False,
    ) -> None:
        modality = str(ds.get("Modality", "")).upper()
        mode = self.policy.text_mode(modality, str(ds.get("SOPClassUID", "")), flagged)
        report.mode, report.scan_action = mode, "scan"
        snapshot = _snapshot(ds)
        decoded = codec.decode(ds)
        work = _Work(ds, decoded, display_info(ds, decoded.palette))
        blanked = _blank_known(work, known)  # before OCR: their text is not read
        work.chosen, work.projected = self._choose(decoded.frames)
        ctx = _Decide(
            build_terms(phi_values),
            mode == "redact_all_text",
            self._allow,
            max(LINE_MAX_HEIGHT_PX, int(LINE_MAX_HEIGHT_SHARE * decoded.frames.shape[1])),
        )
        displays = self._displays(work)
        report.frames = int(decoded.frames.shape[0])
        report.frames_ocr = len(displays)
        lines = read_images(displays, self.detector, self.recognizer)
        report.text_regions = sum(len(x) for x in lines)
        shape = decoded.frames.shape
        found = decide_images(lines, ctx.terms, ctx.redact_all, ctx.allow, shape[2])
        report.phi_regions = len(found)
        boxes = _union_boxes(found, self.policy.margin_px, shape[2], shape[1])
        if boxes:
            value = fill_value(decoded.frames, work.info.photometric, decoded.palette)
            fill_boxes(decoded.frames, [b.box for b in boxes], value)
        report.boxes = blanked + [
            RedactedBox(b.box.x0, b.box.y0, b.box.x1, b.box.y1, b.reason) for b in boxes
        ]
        with stage_span("pixels.verify", {"count": len(boxes)}):
            report.held_boxes = self._verify(work, lines, boxes, ctx)
        report.held_reasons = sorted({b.reason for b in report.held_boxes})
        if self.second_reader is not None:
            self._second_read(work, ctx, report)
        self._finish(ds, snapshot, work, report, changed=bool(boxes or blanked))

    def _choose(self, frames: npt.NDArray[np.generic]) -> tuple[list[int], bool]:
        """The frames to OCR: the distinct ones when few, else the first plus max/min
        projections (True); hashed once per instance."""
        distinct = distinct_frames(frames)
        chosen = sample_frames(distinct, self.policy.max_ocr_frames)
        return chosen, len(chosen) < len(distinct)

    @staticmethod
    def _images(work: _Work) -> list[npt.NDArray[np.generic]]:
        """The images :meth:`_choose` picked, from the frames as they are now (before or after
        the fills)."""
        frames = work.decoded.frames
        if work.projected:  # the first frame and what any frame shows
            return [frames[work.chosen[0]], *projections(frames)]
        return [frames[i] for i in work.chosen]

    def _displays(self, work: _Work) -> list[UInt8Array]:
        """The RGB images to OCR; wide-window greyscale ones contrast-enhanced instead.

        A window over more than a thousand stored levels squeezes them into 256 grey levels:
        text burned in close to the level around it (bright text on bright bone in a 12-bit
        radiograph, say) only shows on the local-contrast (CLAHE) version, which keeps the
        contrast of text the plain display shows (measured: the same recall on the real and the
        synthetic sets as reading both, for half the detector time).  The second reader reads
        the plain display (:meth:`_second_read`).
        """
        plain = [to_display(img, work.info) for img in self._images(work)]
        return self._for_ocr(plain, work.decoded.frames, work.info)

    @staticmethod
    def _for_ocr(
        plain: list[UInt8Array], frames: npt.NDArray[np.generic], info: DisplayInfo
    ) -> list[UInt8Array]:
        """The images PP-OCR reads from the plain displays (see :meth:`_displays`)."""
        return [enhance(d) for d in plain] if wide_window(info, frames.dtype) else plain

    def _filled(self, work: _Work) -> list[UInt8Array]:
        """The plain displays of the OCRed images after the fills (made once per instance)."""
        if work.filled is None:
            work.filled = [to_display(img, work.info) for img in self._images(work)]
        return work.filled

    def _verify(
        self, work: _Work, lines: list[list[Line]], boxes: list[PhiBox], ctx: _Decide
    ) -> list[RedactedBox]:
        """Read again what fills left of every line they touched; hold on legible PHI or
        unreadable text.  The boxes that hold, each with its reason (for the reviewer).

        Only the parts of a line no fill covers are read (:func:`remainders`): a crop with a
        filled block in it reads poorly whatever is left beside it.  Lines no fill touched were
        read once already: only their confidence is checked.
        """
        if not self.policy.verify:
            return []
        threshold = self.policy.verify_min_confidence
        held: list[RedactedBox] = []
        touched: list[tuple[int, Line]] = []
        # on a projection, over a marker the first frame kept: (line, the marker's text)
        blurred: list[tuple[Line, Box, str]] = []
        markers = [
            (n.box, n.rec.text)
            for n in lines[0]
            if not any(n.box.intersection(b.box) for b in boxes)
        ]
        kept = replace(ctx, redact_all=False)
        for index, group in enumerate(lines):
            for line in group:
                if any(line.box.intersection(b.box) for b in boxes):
                    touched.append((index, line))
                    continue
                # kept as read: held to PHI evidence, not to redact_all_text again
                reasons = _verify_line(line, kept, threshold)
                projected = bool(index) and work.projected
                under = marker_under(line.box, markers) if projected else None
                if under is not None and reasons <= {LOW}:
                    marker_box, marker = under
                    if not shows_marker(line.rec, marker):
                        # both boxes: a projection's box may cut the marker's characters
                        box = line.box.union(marker_box)
                        blurred.append((Line(box, line.rec), marker_box, marker))
                    continue
                held += _held(line.box, reasons)
        if touched:
            held += self._reread(work, touched, [b.box for b in boxes], ctx)
        return held + self._frame_by_frame(work, blurred, ctx)

    def _frame_by_frame(
        self, work: _Work, blurred: list[tuple[Line, Box, str]], ctx: _Decide
    ) -> list[RedactedBox]:
        """Read ``blurred`` regions on every frame (:mod:`~dxai.actors.pixels.cine`), over the
        region and over the marker's own box; the ones that still hold, with the reasons of
        their first holding frame."""
        if not blurred:
            return []
        boxes = [line.box for line, _, _ in blurred] + [box for _, box, _ in blurred]
        per_box = read_on_frames(work.decoded.frames, work.info, boxes, self.recognizer)
        held: list[RedactedBox] = []
        for n, (line, marker_box, marker) in enumerate(blurred):
            if per_box is None:  # too many frames to read one by one
                held += _held(line.box, {LOW})
                continue
            frames = zip(per_box[n], per_box[len(blurred) + n], strict=True)
            reasons = (
                self._frame_holds(line.box, marker_box, r, m, marker, ctx) for r, m in frames
            )
            held += _held(line.box, next((r for r in reasons if r), set()))
        return held

    def _frame_holds(
        self,
        box: Box,
        marker_box: Box,
        region: Recognition,
        alone: Recognition,
        marker: str,
        ctx: _Decide,
    ) -> set[str]:
        """Why one frame holds: PHI read over the region; else, when the region reads unsure
        or as nothing, a marker that does not read clearly as itself over its own box."""
        reasons = self._frame_reasons(box, region, marker, ctx)
        if reasons - {LOW}:
            return reasons
        if not reasons and region.text.strip():
            return set()
        threshold = self.policy.verify_min_confidence
        clear = alone.text.strip() and alone.confidence >= threshold
        if clear and same_marker(alone.text, marker):
            return self._frame_reasons(marker_box, alone, marker, ctx)
        return {LOW}

    def _frame_reasons(self, box: Box, reading: Recognition, marker: str, ctx: _Decide) -> set[str]:
        """Why one frame's reading of a marker's place holds (see the cine module)."""
        threshold = self.policy.verify_min_confidence
        reasons = _verify_line(Line(box, reading), replace(ctx, redact_all=False), threshold)
        other_text = ctx.redact_all and not same_marker(reading.text, marker)
        if other_text and legible_phi(reading.text, ctx.terms, True, ctx.allow):
            reasons.add("phi_legible")
        return reasons

    def _reread(
        self, work: _Work, touched: list[tuple[int, Line]], fills: list[Box], ctx: _Decide
    ) -> list[RedactedBox]:
        """Read the remainders of the touched lines on the filled images; what holds."""
        displays = self._for_ocr(self._filled(work), work.decoded.frames, work.info)
        pieces: list[tuple[Line, Box]] = []
        crops: list[UInt8Array] = []
        for index, line in touched:
            vertical = line.rec.rotation in (90, 270)
            for part in remainders(line.box, fills, vertical=vertical):
                crop = displays[index][part.y0 : part.y1, part.x0 : part.x1]
                if _has_ink(crop):
                    pieces.append((line, part))
                    crops.append(crop)
        held: list[RedactedBox] = []
        recs = read_crops(crops, self.recognizer, direction_of(self.recognizer)) if crops else []
        threshold = self.policy.verify_min_confidence
        for (line, part), rec in zip(pieces, recs, strict=True):
            held += _held(part, _verify_line(Line(part, rec), ctx, threshold, line.rec.text))
        return held

    def _second_read(self, work: _Work, ctx: _Decide, report: PixelReport) -> None:
        """The independent verify: the second reader reads each OCRed image after the fills;
        PHI evidence it reads holds the instance, its boxes kept for the reviewer."""
        assert self.second_reader is not None
        report.second_reader = self.second_reader.name
        floor = self.policy.second_reader_min_confidence
        found: set[Box] = set()
        for image in self._filled(work):
            for line in self.second_reader.read(image):
                if line.confidence >= floor and legible_phi(line.text, ctx.terms, False, ctx.allow):
                    found.add(line.box)
        if found:
            report.held_reasons = sorted({*report.held_reasons, SECOND_READER})
            report.held_boxes += [
                RedactedBox(b.x0, b.y0, b.x1, b.y1, SECOND_READER) for b in sorted(found)
            ]

    def _finish(
        self,
        ds: Dataset,
        snapshot: tuple[dict[str, DataElement], str],
        work: _Work,
        report: PixelReport,
        changed: bool,
    ) -> None:
        if changed:
            codec.encode(ds, work.decoded)
        else:
            _restore(ds, snapshot)
        if report.held_reasons:
            report.status = "held"
            return
        report.status = "redacted" if changed else "clean"
        mark_clean(ds)


@dataclass(frozen=True)
class _Decide:
    terms: PhiTerms
    redact_all: bool
    allow: tuple[re.Pattern[str], ...]
    line_max_height: int


def _held(box: Box, reasons: set[str]) -> list[RedactedBox]:
    return [RedactedBox(box.x0, box.y0, box.x1, box.y1, reason) for reason in sorted(reasons)]


def _verify_line(line: Line, ctx: _Decide, threshold: float, before: str | None = None) -> set[str]:
    """Hold reasons for a line as read now (``before``: as read before its fill)."""
    out: set[str] = set()
    if line.rec.confidence < threshold and could_hide_text(line, ctx.line_max_height):
        out.add(LOW)
    if legible_phi(line.rec.text, ctx.terms, ctx.redact_all, ctx.allow, before):
        out.add("phi_legible")
    return out


def could_hide_text(line: Line, max_height: int) -> bool:
    """Whether a poorly read region may be a line of text (and so may hide PHI).

    The detector also fires on anatomy and textures, which read as one or two characters
    with low confidence in a blob-shaped box.  A region counts when something was read and it
    is shaped like a text line (longer than thick along the way it was read, or read as three
    characters or more) and no thicker than an annotation line can be on this image.  A line
    read turned by 90 or 270 degrees runs down the image: its thickness is the box's width.
    """
    read = line.rec.text.strip()
    across, along = line.box.height, line.box.width
    if line.rec.rotation in (90, 270):
        across, along = along, across
    if not read or across > max_height:
        return False
    return len(read.replace(" ", "")) >= MIN_LINE_CHARS or along >= 2 * across


def remainders(line: Box, fills: Sequence[Box], *, vertical: bool = False) -> list[Box]:
    """The parts of a text line that the fills leave readable, in reading order.

    A fill covers the part of the line it spans when it covers at least ``COVERED_HEIGHT`` of
    the line's thickness (the strip beside it is too thin for a character); what is left
    between covered parts counts when it is at least half the line's thickness long (a
    character).  ``vertical``: the line runs down the image (read turned by 90 or 270 degrees).
    """
    if vertical:
        flipped = remainders(_transpose(line), [_transpose(f) for f in fills])
        return [_transpose(part) for part in flipped]
    spans: list[tuple[int, int]] = []
    for fill in fills:
        x0, x1 = max(line.x0, fill.x0), min(line.x1, fill.x1)
        height = min(line.y1, fill.y1) - max(line.y0, fill.y0)
        if x1 > x0 and height >= COVERED_HEIGHT * line.height:
            spans.append((x0, x1))
    out: list[Box] = []
    x = line.x0
    for x0, x1 in [*sorted(spans), (line.x1, line.x1)]:
        if x0 - x >= max(MIN_CHAR_WIDTH_PX, line.height // 2):
            out.append(Box(x, line.y0, x0, line.y1))
        x = max(x, x1)
    return out


def _transpose(box: Box) -> Box:
    return Box(box.y0, box.x0, box.y1, box.x1)


def _has_ink(crop: UInt8Array) -> bool:
    """False when a crop is (almost) one flat colour: nothing left to read."""
    return bool(crop.size) and float(crop.astype(np.float32).std()) > 2.0


def _blank_known(work: _Work, known: Sequence[Box]) -> list[RedactedBox]:
    """Fill the known PHI regions on every frame (clipped to it); their report boxes."""
    frames = work.decoded.frames
    clipped = {box.expand(0, frames.shape[2], frames.shape[1]) for box in known}
    boxes = sorted(box for box in clipped if box.area)
    if boxes:
        fill_boxes(frames, boxes, fill_value(frames, work.info.photometric, work.decoded.palette))
    return [RedactedBox(b.x0, b.y0, b.x1, b.y1, KNOWN_REGION) for b in boxes]


def _union_boxes(found: Sequence[PhiBox], margin: int, width: int, height: int) -> list[PhiBox]:
    """Expand each box by ``margin`` and drop exact duplicates (boxes apply to every frame)."""
    seen: dict[Box, PhiBox] = {}
    for item in found:
        box = item.box.expand(margin, width, height)
        if box.area and box not in seen:
            seen[box] = PhiBox(box, item.reason)
    return sorted(seen.values(), key=lambda b: b.box)


_PIXEL_KEYWORDS = (
    "PixelData",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "LossyImageCompression",
    "LossyImageCompressionMethod",
    "LossyImageCompressionRatio",
    "NumberOfFrames",
)


def _snapshot(ds: Dataset) -> tuple[dict[str, DataElement], str]:
    elems = {k: copy.deepcopy(ds[k]) for k in _PIXEL_KEYWORDS if k in ds}
    return elems, str(codec.transfer_syntax(ds))


def _restore(ds: Dataset, snapshot: tuple[dict[str, DataElement], str]) -> None:
    elems, ts = snapshot
    for keyword in _PIXEL_KEYWORDS:
        if keyword in elems:
            ds[keyword] = elems[keyword]
        elif keyword in ds:
            del ds[keyword]
    if hasattr(ds, "file_meta"):
        ds.file_meta.TransferSyntaxUID = uid.UID(ts)


def mark_clean(ds: Dataset) -> None:
    """BurnedInAnnotation NO and the Clean Pixel Data Option code in the method sequence."""
    ds.BurnedInAnnotation = "NO"
    seq = ds.get("DeidentificationMethodCodeSequence")
    if seq is None:
        ds.DeidentificationMethodCodeSequence = []
        seq = ds.DeidentificationMethodCodeSequence
    if any(str(item.get("CodeValue", "")) == CLEAN_PIXEL_CODE[0] for item in seq):
        return
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = CLEAN_PIXEL_CODE
    seq.append(item)
