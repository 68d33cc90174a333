"""Scoring redaction against ground-truth text boxes, on output pixels only.

A PHI box counts as found on a frame when its text is gone.  With a glyph mask (the synthetic
corpus records one per string) that means at least ``INK_SHARE`` of the glyph pixels were
covered: changed, or painted the fill colour of the box's changed pixels.  That judges any
redactor's box shape alike, tight word boxes as well as padded line boxes.  Without a mask
(boxes drawn by hand on real files) the output region must be (almost) uniform and differ from
the input.  A benign marker is kept when it stays legible: at most ``BENIGN_MAX_CHANGED`` of
its glyph pixels changed (a fill that grazes the edge of a neighbouring marker leaves it
readable), or, without a mask, when its box is unchanged.  ``benign_untouched`` counts the
markers whose box is unchanged pixel for pixel, the strict figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

UNIFORM_SHARE = 0.95
INK_SHARE = 0.98
BENIGN_MAX_CHANGED = 0.10

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class GroundTruthBox:
    """One burned-in string: frames, box [x0, y0, x1, y1), whether it is PHI, glyph mask."""

    frames: tuple[int, ...]
    box: tuple[int, int, int, int]
    phi: bool
    ink: BoolArray | None = None


class TruthRecord(Protocol):
    """What a ground-truth record offers (``dxai.synth.manifest.BurnedInText``)."""

    @property
    def frames(self) -> list[int]: ...
    @property
    def box(self) -> list[int]: ...
    @property
    def phi(self) -> bool: ...
    def ink_mask(self) -> BoolArray | None: ...


def truth_boxes(records: Sequence[TruthRecord]) -> list[GroundTruthBox]:
    """Ground-truth boxes from manifest records."""
    return [
        GroundTruthBox(
            tuple(r.frames), (r.box[0], r.box[1], r.box[2], r.box[3]), r.phi, r.ink_mask()
        )
        for r in records
    ]


@dataclass
class Score:
    """Counts of PHI boxes found and benign boxes kept."""

    phi_total: int = 0
    phi_found: int = 0
    benign_total: int = 0
    benign_kept: int = 0
    benign_untouched: int = 0

    def add(self, other: Score) -> None:
        """Accumulate another score."""
        self.phi_total += other.phi_total
        self.phi_found += other.phi_found
        self.benign_total += other.benign_total
        self.benign_kept += other.benign_kept
        self.benign_untouched += other.benign_untouched

    @property
    def recall(self) -> float:
        """Share of PHI boxes found (1.0 when there were none)."""
        return self.phi_found / self.phi_total if self.phi_total else 1.0

    @property
    def kept(self) -> float:
        """Share of benign markers still legible (1.0 when there were none)."""
        return self.benign_kept / self.benign_total if self.benign_total else 1.0

    @property
    def untouched(self) -> float:
        """Share of benign boxes left unchanged pixel for pixel (1.0 when there were none)."""
        return self.benign_untouched / self.benign_total if self.benign_total else 1.0


def _region(frames: npt.NDArray[np.generic], f: int, box: Sequence[int]) -> npt.NDArray[np.generic]:
    x0, y0, x1, y1 = box
    region = frames[f, y0:y1, x0:x1]
    return region.reshape(region.shape[0] * region.shape[1], -1)


def text_removed(
    before: npt.NDArray[np.generic], after: npt.NDArray[np.generic], ink: BoolArray | None = None
) -> bool:
    """True when the text in a region (pixels x samples, row-major) is gone from ``after``.

    With ``ink`` (the region's glyph mask, rows x columns): enough glyph pixels are covered.
    Without it: ``after`` is almost uniform and differs from ``before``.
    """
    if after.size == 0 or np.array_equal(before, after):
        return False
    if ink is not None and ink.any():
        return ink_covered(before, after, ink) >= INK_SHARE
    _, counts = np.unique(after, axis=0, return_counts=True)
    return bool(counts.max() / after.shape[0] >= UNIFORM_SHARE)


def _changed(
    before: npt.NDArray[np.generic], after: npt.NDArray[np.generic], shape: tuple[int, ...]
) -> BoolArray:
    """Which pixels of a region (pixels x samples) changed, as a rows x columns mask."""
    changed: BoolArray = np.asarray(before != after).any(axis=1).reshape(shape)
    return changed


def ink_covered(
    before: npt.NDArray[np.generic], after: npt.NDArray[np.generic], ink: BoolArray
) -> float:
    """Share of glyph pixels covered by the fill.

    A glyph pixel is covered when it changed, or when it lies inside the rectangle spanned by
    the changed pixels and already had the fill colour (the commonest changed value): a fill the
    colour of the text still hides it.  Glyphs outside that rectangle count only if changed.
    """
    changed = _changed(before, after, ink.shape)
    if not changed.any():
        return 0.0
    values, counts = np.unique(after[changed.ravel()], axis=0, return_counts=True)
    filled = (after == values[counts.argmax()]).all(axis=1).reshape(ink.shape)
    rows, cols = np.nonzero(changed)
    inside = np.zeros_like(changed)
    inside[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
    return float((changed | (filled & inside))[ink].mean())


def marker_legible(
    before: npt.NDArray[np.generic], after: npt.NDArray[np.generic], ink: BoolArray | None = None
) -> bool:
    """True when a benign marker's region still reads: few glyph pixels changed, or none."""
    if ink is None or not ink.any():
        return bool(np.array_equal(before, after))
    return float(_changed(before, after, ink.shape)[ink].mean()) <= BENIGN_MAX_CHANGED


def score_frames(
    before: npt.NDArray[np.generic],
    after: npt.NDArray[np.generic],
    truth: Sequence[GroundTruthBox],
) -> Score:
    """Score one instance: frames are ``F x H x W`` or ``F x H x W x 3`` stored values."""
    score = Score()
    for item in truth:
        pairs = [(_region(before, f, item.box), _region(after, f, item.box)) for f in item.frames]
        if item.phi:
            score.phi_total += 1
            score.phi_found += all(text_removed(b, a, item.ink) for b, a in pairs)
        else:
            score.benign_total += 1
            score.benign_kept += all(marker_legible(b, a, item.ink) for b, a in pairs)
            score.benign_untouched += all(np.array_equal(b, a) for b, a in pairs)
    return score
