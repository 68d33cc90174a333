"""Text-presence candidates compared: which frames they flag, and how fast.

The ``presence`` scan action OCRs only the frames a cheap pass flags; this measures candidate
passes over labelled display frames (the images the redactor OCRs):

- ``stats``: :func:`dxai.actors.pixels.presence.text_lines` alone (top-hat strokes chained into
  lines); any candidate line flags the frame;
- ``stats+det``: the same, each candidate line confirmed by the PP-OCR detector on a crop
  around it (what ``presence`` runs: :func:`~dxai.actors.pixels.presence.text_likely`);
- ``det320`` / ``det480`` / ``det960``: the PP-OCR detector alone on the whole frame, its input
  scaled to at most that side (960 is what full OCR uses); a box at least 1.5 times wider than
  tall flags the frame.

Frames (``group``: label):

- ``synth_one_{CT,MR,DX}``: text. A phantom of ``dxai.synth`` with ONE PHI string burned in
  (random font, size 10-32 px, contrast style and place); ``synth_plain_*``: none, the same
  phantoms without text; ``synth_corpus``: text, every frame of ``dxai synth`` (seed 0);
- ``real_text``: text, the reference files with burned-in text (and the JSL set when
  ``RESTRICTED_REFERENCE_DIR`` or ../shared/reference has it); ``real_plain``: none, the
  reference files without text; ``real_ct``: none, two real CT slices (abdomen, spine) in six
  clinical windows, with 0 or 20 HU of added noise, upright and flipped.

``recall_vs_det960`` is the share of the frames on which full OCR's detector finds a text line
that the candidate flags too (what a missed flag costs: text the OCR would have read).  Prints
JSON and writes bench/results/presence.json.

    python bench/presence.py [--per-kind 60]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pydicom

from dxai.actors.pixels import presence
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.det import DetParams
from dxai.actors.pixels.ocr import EngineTextDetector
from dxai.actors.pixels.render import DisplayInfo, display_info
from dxai.actors.pixels.types import UInt8Array
from dxai.synth import pixels
from dxai.synth.burnin import TextItem, burn_in
from dxai.synth.corpus import generate_corpus
from dxai.synth.identities import make_identity
from dxai.synth.plan import plan_study
from dxai.synth.texts import phi_items

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "presence.json"
REFERENCES = (ROOT / "tests/data/reference/dicom", ROOT.parent / "shared/reference/dicom")
TEXT_FILES = (
    "vlut_04",
    "GDCMJ2K_TextGBR",
    "examples_ybr_color",
    "JPGLosslessP14SV1_1s_1f_8b",
    "RG3_J2KI",
)
NOT_IMAGES = ("OT-PAL-8-face", "JPEGLSNearLossless", "chrX1", "chrRuss", "rtdose", "liver")
REAL_CT = ("pydicom-data__explicit_VR-UN.dcm", "pydicom-data__bad_sequence.dcm")
WINDOWS = ((40, 400), (50, 350), (-600, 1500), (300, 2000), (-500, 1200), (40, 80))
Frame = tuple[str, str, UInt8Array]  # group, label, grey display image


def _phantom(kind: str, seed: int, i: int) -> pixels.Phantom:
    gen = np.random.default_rng([seed, i])
    if kind == "CT":
        return pixels.ct_phantom(gen, 512 if i % 3 else 256)
    if kind == "MR":
        return pixels.mr_phantom(gen, 256)
    return pixels.dx_phantom(gen, 512, mono1=i % 2 == 0)


def _phantom_grey(ph: pixels.Phantom) -> UInt8Array:
    unit = (ph.frames[0].astype(np.float32) - ph.display_lo) / (ph.display_hi - ph.display_lo)
    return np.round(np.clip(unit, 0.0, 1.0) * 255).astype(np.uint8)


def synthetic(per_kind: int) -> list[Frame]:
    """Phantoms with one PHI string burned in (text) and the same phantoms without (none)."""
    out: list[Frame] = []
    for kind in ("CT", "MR", "DX"):
        count = per_kind if kind == "CT" else per_kind // 3
        for i in range(count):
            out.append((f"synth_plain_{kind}", "none", _phantom_grey(_phantom(kind, 100, i))))
            ph, rng = _phantom(kind, 200, i), random.Random(f"one-{kind}-{i}")
            item = rng.choice(phi_items(plan_study(200, i, make_identity(200, i)), rng))
            region = rng.choice(["tl", "tr", "bl", "br", "top", "bottom"])
            if burn_in(ph, [TextItem(item.text, item.kind, True, region)], rng):
                out.append((f"synth_one_{kind}", "text", _phantom_grey(ph)))
    return out


def _file_frames(ds: pydicom.Dataset, group: str, label: str, limit: int) -> list[Frame]:
    decoded = decode(ds)
    info = display_info(ds, decoded.palette)
    return [(group, label, presence.display_grey(f, info)) for f in decoded.frames[:limit]]


def corpus_frames() -> list[Frame]:
    """Every frame of the synthetic corpus (seed 0, two patients): all carry text."""
    root = Path(tempfile.gettempdir()) / "dxai-bench-presence-corpus"
    if not (root / "ground_truth.json").exists():
        generate_corpus(root, seed=0, studies=2)
    out: list[Frame] = []
    for path in sorted(root.rglob("*.dcm")):
        out += _file_frames(pydicom.dcmread(path), "synth_corpus", "text", 64)
    return out


def reference_frames() -> list[Frame]:
    """The reference files: with burned-in text, without, and real CT slices in windows."""
    seen: dict[str, Path] = {}
    for base in REFERENCES:
        for path in sorted(base.glob("*/*.dcm")):
            seen.setdefault(path.name, path)
    out: list[Frame] = []
    for name, path in sorted(seen.items()):
        if any(n in name for n in NOT_IMAGES):
            continue
        ds = pydicom.dcmread(path, force=True)
        if "PixelData" not in ds:
            continue
        text = path.parent.name == "burned_in" or any(n in name for n in TEXT_FILES)
        out += _file_frames(
            ds, "real_text" if text else "real_plain", "text" if text else "none", 3
        )
        if name in REAL_CT:
            out += _windows(ds)
    return out


def _windows(ds: pydicom.Dataset) -> list[Frame]:
    slope, intercept = float(ds.get("RescaleSlope", 1) or 1), float(ds.get("RescaleIntercept", 0))
    hu = decode(ds).frames[0].astype(np.float32) * slope + intercept
    rng, out = np.random.default_rng(5), []
    for center, width in WINDOWS:
        info = DisplayInfo("MONOCHROME2", (float(center), float(width)), (0.0, 1.0))
        for sigma in (0.0, 20.0):
            noisy = hu + rng.normal(0, sigma, hu.shape).astype(np.float32) if sigma else hu
            for frame in (noisy, noisy[::-1]):
                out.append(("real_ct", "none", presence.display_grey(frame, info)))
    return out


def candidates() -> dict[str, Callable[[UInt8Array], bool]]:
    """Name -> frame flagged?"""
    full = EngineTextDetector(DetParams(), threads=1)

    def det(side: int) -> Callable[[UInt8Array], bool]:
        engine = EngineTextDetector(DetParams(max_side=side, min_side=min(384, side)), threads=1)
        return lambda g: any(b.width >= 1.5 * b.height for b in engine.detect(_rgb(g)))

    return {
        "stats": lambda g: bool(presence.text_lines(g)),
        "stats+det": lambda g: presence.text_likely(g, detector=full),
        "det320": det(320),
        "det480": det(480),
        "det960": det(960),
    }


def _rgb(g: UInt8Array) -> UInt8Array:
    return np.ascontiguousarray(np.repeat(g[..., np.newaxis], 3, axis=2))


def measure(frames: list[Frame]) -> dict[str, Any]:
    """Per candidate: flagged / frames per group, ms per 512x512 frame, recall vs det960."""
    flags: dict[str, list[bool]] = {}
    report: dict[str, Any] = {}
    for name, flag in candidates().items():
        flags[name], times = [], []
        for _group, _label, g in frames:
            started = time.perf_counter()
            flags[name].append(flag(g))
            if g.shape == (512, 512):
                times.append(time.perf_counter() - started)
        report[name] = {"ms_per_512_frame": round(1000 * float(np.median(times)), 2)}
    groups = sorted({f[0] for f in frames})
    for name, flagged in flags.items():
        for group in groups:
            rows = [i for i, f in enumerate(frames) if f[0] == group]
            report[name][group] = f"{sum(flagged[i] for i in rows)}/{len(rows)}"
        seen = [i for i, hit in enumerate(flags["det960"]) if hit and frames[i][1] == "text"]
        report[name]["recall_vs_det960"] = round(sum(flagged[i] for i in seen) / len(seen), 3)
    return report


def main() -> int:
    """Build the frames, measure every candidate, print and save the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=60, help="synthetic CT phantoms")
    args = parser.parse_args()
    frames = synthetic(args.per_kind) + corpus_frames() + reference_frames()
    report = {
        "frames": {g: sum(f[0] == g for f in frames) for g in sorted({f[0] for f in frames})},
        "cpus": os.cpu_count(),
        "candidates": measure(frames),
    }
    text = json.dumps(report, indent=1)
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
