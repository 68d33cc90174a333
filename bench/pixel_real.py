"""Burned-in PHI on real scanners' files: which ground-truth texts stay legible after redaction.

The files are read in place: the licensed ones the repository carries
(``tests/data/reference/dicom/burned_in``) and the JSL set kept outside it
(``$RESTRICTED_REFERENCE_DIR/dicom/burned_in``, ``jsl__*.dcm`` with a ``*.json`` beside each).
Each file goes through the production pixel step: :class:`PixelStep` on the pixel actor ``dxai
deid`` and the daemon build (the batched OCR client with its engines, batchers and shapes), PHI
values, known regions and the ``BurnedInAnnotation`` flag of the original header, the default
pixel policy, ``--pixels auto``.

Ground truth, per file: the JSL ``annotation`` values (text and box), Presidio's
``boxes_image_px``, or, for files without either, the PHI values of the header.  A text counts as
*legible* when OCR of the image (the same PP-OCRv4 models, first frame, enhanced version too for
wide windows) reads it: its normalised form (or a word of four characters or more) fuzzy-matches
a line read anywhere (``rapidfuzz.partial_ratio`` >= ``LEGIBLE_RATIO``), or one of its short words
(1-3 characters) is a word of a line read over its box.  ``recall`` = texts legible before and
not after / texts legible before.  Output names ground-truth keys (``Age``, ``PatientName``),
never the values.

Peer engines (``pixel_phi --real`` runs Presidio) redact the same files elsewhere; their output
files are scored here with the same OCR and the same legibility test (:func:`score_peer`), and
:mod:`_pixel_real_totals` sums each engine and sets dxai against each peer.  dxai's time is the
pixel step alone (the file already read); a peer's ``s_per_instance`` is its redaction call
alone too (``s_with_io`` adds reading and writing the file).
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import time
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydicom
from _pixel_real_totals import SECOND_READER, compare, dxai_totals, engines, recall
from rapidfuzz import fuzz

from dxai.actors.outbound.pixel_step import PixelStep
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.ocr import EngineTextDetector, EngineTextRecognizer, Line, read_images
from dxai.actors.pixels.phi import PHI_KEYWORDS
from dxai.actors.pixels.render import display_info, enhance, to_display, wide_window
from dxai.configs.phi import date_spellings, normalise
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline.inference import open_pixel_actor
from dxai.observability.metrics import Sensor

REPO = Path(__file__).resolve().parent.parent
CARRIED = REPO / "tests" / "data" / "reference" / "dicom" / "burned_in"
LEGIBLE_RATIO = 88
# words that say nothing about whom an image shows
_FILLER = frozenset({"AND", "THE", "OF"})


@dataclass(frozen=True)
class Truth:
    """One ground-truth text: its key (never printed with the value), value and box."""

    key: str
    value: str
    box: tuple[int, int, int, int] | None = None


def restricted_folder() -> Path | None:
    """The JSL burned-in folder named by ``RESTRICTED_REFERENCE_DIR``, when present."""
    value = os.environ.get("RESTRICTED_REFERENCE_DIR", "")
    folder = Path(value) / "dicom" / "burned_in" if value else None
    return folder if folder is not None and folder.is_dir() else None


def real_files(restricted: Path | None) -> list[Path]:
    """The carried burned-in files, then the JSL ones."""
    files = sorted(CARRIED.glob("*.dcm"))
    if restricted is not None:
        files += sorted(restricted.glob("jsl__*.dcm"))
    return files


def truths(path: Path, ds: pydicom.Dataset) -> tuple[str, list[Truth]]:
    """Ground truth of ``path``: (source, texts)."""
    jsl = path.with_suffix(".json")
    if jsl.is_file():
        raw = json.loads(jsl.read_text(encoding="utf-8"))
        out = [_jsl_truth(item) for item in raw["annotation"]]
        return "json", [t for t in out if t.value.strip()]
    presidio = path.with_name(path.stem + ".ground_truth.json")
    if presidio.is_file():
        raw = json.loads(presidio.read_text(encoding="utf-8"))
        return "presidio", [
            Truth(
                f"box{i}",
                b["label"],
                (b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]),
            )
            for i, b in enumerate(raw["boxes_image_px"])
        ]
    return "header", _header_truth(ds)


def _jsl_truth(item: dict[str, Any]) -> Truth:
    value = item["value"]
    box = value.get("bbox")
    usable = box is not None and box[2] > box[0]
    return Truth(item["key"]["text"], value["text"], tuple(box) if usable else None)


def _header_truth(ds: pydicom.Dataset) -> list[Truth]:
    out: list[Truth] = []
    for keyword in PHI_KEYWORDS:
        value = str(ds.get(keyword, "") or "").replace("^", " ").strip()
        if value:
            out.append(Truth(keyword, value))
    return out


def ocr(ds: pydicom.Dataset, det: EngineTextDetector, rec: EngineTextRecognizer) -> list[Line]:
    """Lines read on the first frame (and its contrast-enhanced version for wide windows)."""
    decoded = decode(ds)
    info = display_info(ds, decoded.palette)
    image = to_display(decoded.frames[0], info)
    images = [image, enhance(image)] if wide_window(info, decoded.frames.dtype) else [image]
    return [line for lines in read_images(images, det, rec) for line in lines]


def legible(truth: Truth, lines: list[Line]) -> bool:
    """Whether OCR still reads ``truth`` (or a meaningful part of it) in ``lines``."""
    read = [(line, normalise(line.rec.text)) for line in lines]
    for form in _long_forms(truth.value):
        for _, text in read:
            shorter = min(len(form), len(text))
            if shorter >= 4 and fuzz.partial_ratio(form, text) >= LEGIBLE_RATIO:
                return True
    if truth.box is None:
        return False
    short = {w for w in _words(truth.value) if len(w) < 4}
    for line, _ in read:
        if _overlaps(line, truth.box) and short & set(_words(line.rec.text)):
            return True
    return False


def _words(text: str) -> list[str]:
    return [normalise(w) for w in re.split(r"[^0-9A-Za-z]+", text) if w]


def _long_forms(value: str) -> list[str]:
    dates = sorted(date_spellings(value)) if re.fullmatch(r"\d{8}", value.strip()) else []
    whole = normalise(value)
    words = [w for w in _words(value) if len(w) >= 4 and w not in _FILLER]
    return dates or ([whole] if len(whole) >= 4 else []) + words


def _overlaps(line: Line, box: tuple[int, int, int, int], pad: int = 3) -> bool:
    x0, y0, x1, y1 = box
    b = line.box
    return b.x0 < x1 + pad and x0 - pad < b.x1 and b.y0 < y1 + pad and y0 - pad < b.y1


Peers = dict[str, dict[str, dict[str, Any]]]
"""Peer engines' outputs: run name -> file name -> ok, s, s_redact, error, dst (``pixel_phi``)."""


@dataclass(frozen=True)
class Baseline:
    """One real file before redaction: its ground truth and what OCR reads on it."""

    original: pydicom.Dataset
    source: str
    texts: list[Truth]
    before: list[Line]
    seen: list[Truth]


def baseline(path: Path, det: EngineTextDetector, rec: EngineTextRecognizer) -> Baseline:
    """Read ``path``, its ground truth, and which texts OCR reads on it before redaction."""
    original = pydicom.dcmread(path)
    source, texts = truths(path, original)
    before = ocr(original, det, rec)
    return Baseline(original, source, texts, before, [t for t in texts if legible(t, before)])


def run_real(
    threads: int = 1,
    restricted: Path | None = None,
    peers: Peers | None = None,
    repeat: int = 1,
) -> dict[str, Any]:
    """Redact every real file through the pixel step and score it; score each peer engine's
    outputs of the same files with the same OCR and legibility test; totals per engine."""
    return asyncio.run(_run_real(threads, restricted, peers or {}, repeat))


def production_config(threads: int) -> DxaiConfig:
    """The configuration dxai's run uses: defaults, ``pixels: auto``, ``threads`` ONNX Runtime
    threads, and no recognition cache (a repeated run of a file must read it again, as its
    first run did)."""
    return DxaiConfig.model_validate(
        {
            "deid": {"pixels": "auto", "pixel_policy": {"rec_cache_entries": 0}},
            "inference": {"engine": {"intra_op_threads": threads}},
            "metrics": {"enabled": False},
        }
    )


async def _run_real(threads: int, restricted: Path | None, peers: Peers, repeat: int) -> Any:
    """:func:`run_real` with the pixel actor ``dxai deid`` and the daemon use (the batched
    OCR client, its engines and batchers), not a stand-alone redactor."""
    config = production_config(threads)
    async with AsyncExitStack() as stack:
        actor = await open_pixel_actor(config, Sensor(), stack)
        assert actor is not None, "the pixel actor did not load"
        step = PixelStep(actor, "auto", config.deid.pixel_policy)
        return await asyncio.to_thread(_score_all, step, threads, restricted, peers, repeat)


def _score_all(
    step: PixelStep, threads: int, restricted: Path | None, peers: Peers, repeat: int
) -> dict[str, Any]:
    det, rec = EngineTextDetector(threads=threads), EngineTextRecognizer(threads=threads)
    restricted = restricted or restricted_folder()
    per_file: dict[str, Any] = {}
    peer_files: dict[str, dict[str, Any]] = {name: {} for name in peers}
    for path in real_files(restricted):
        base = baseline(path, det, rec)
        per_file[path.name] = _one(base, step, det, rec, repeat)
        for name, outputs in peers.items():
            peer_files[name][path.name] = score_peer(base, outputs.get(path.name), det, rec)
    totals = dxai_totals(per_file)
    return {
        "restricted_folder": str(restricted) if restricted else None,
        **totals,
        "engines": engines(totals, peer_files),
        "comparison": compare(per_file, peer_files),
    }


def _one(
    base: Baseline,
    step: PixelStep,
    det: EngineTextDetector,
    rec: EngineTextRecognizer,
    repeat: int = 1,
) -> dict[str, Any]:
    seconds = float("inf")
    for _ in range(repeat):  # the fastest of ``repeat`` runs; the last one's output is scored
        ds = copy.deepcopy(base.original)
        start = time.perf_counter()
        verdict = step.run(ds, step.inspect(base.original))
        seconds = min(seconds, time.perf_counter() - start)
    after = ocr(ds, det, rec)
    left = [t.key for t in base.seen if legible(t, after)]
    report = verdict.report or {}
    return {
        "truth": base.source,
        "texts": len(base.texts),
        "legible_before": len(base.seen),
        "legible_after": len(left),
        "recall": recall(len(base.seen), len(left)),
        "still_legible": left,
        "status": verdict.status,
        "reason": verdict.reason,
        "mode": report.get("mode", ""),
        "boxes": report.get("boxes_redacted", 0),
        "lines_before": len(base.before),
        "lines_after": len(after),
        "s_per_instance": round(seconds, 3),
        "held_reasons": held_reasons(verdict.status, verdict.reason, report),
        "second_reader": report.get("second_reader", ""),
        "released": verdict.status == "passed",
        "crashed": verdict.status == "failed",
    }


def held_reasons(status: str, reason: str, report: dict[str, Any]) -> list[str]:
    """Every reason a held instance was held for: the redactor's (``pixel_`` prefixed, as the
    pixel step names them; the second reader's ``second_reader_phi`` as it is), else the
    step's own (an instance not OCRed, no actor)."""
    if status != "held":
        return []
    raw = report.get("held_reasons") or []
    named = {r if r == SECOND_READER else f"pixel_{r}" for r in raw}
    return sorted(named) or [reason]


def score_peer(
    base: Baseline,
    output: dict[str, Any] | None,
    det: EngineTextDetector,
    rec: EngineTextRecognizer,
) -> dict[str, Any]:
    """A peer engine's output of one file, scored as dxai's is.  A crash (no output, or one
    that does not decode) leaves every text legible, as the synthetic mode counts a crash."""
    output = output or {"ok": False, "s": 0.0, "error": "no_result"}
    after, error = _read_output(output, det, rec)
    left = [t.key for t in base.seen if after is None or legible(t, after)]
    return {
        "legible_before": len(base.seen),
        "legible_after": len(left),
        "recall": recall(len(base.seen), len(left)),
        "still_legible": left,
        "crashed": after is None,
        "error": error,
        "lines_after": None if after is None else len(after),
        "s_per_instance": round(float(output.get("s_redact", output["s"])), 3),
        "s_with_io": round(float(output["s"]), 3),
    }


def _read_output(
    output: dict[str, Any], det: EngineTextDetector, rec: EngineTextRecognizer
) -> tuple[list[Line] | None, str]:
    """OCR lines of a peer's output file (None and why when there is none to read)."""
    if not output.get("ok"):
        return None, str(output.get("error") or "crashed")
    try:
        return ocr(pydicom.dcmread(output["dst"]), det, rec), ""
    except Exception as exc:
        return None, f"unreadable_output:{type(exc).__name__}"
