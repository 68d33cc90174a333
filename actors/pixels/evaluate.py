"""Scoring redaction against ground-truth text boxes, on output pixels only.

A PHI box counts as found on a frame when its output region is (almost) uniform and differs
from the input: the text is gone.  A benign box is kept when its pixels are unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

UNIFORM_SHARE = 0.95


@dataclass(frozen=True)
class GroundTruthBox:
    """One burned-in string: frames, box [x0, y0, x1, y1) and whether it is PHI."""

    frames: tuple[int, ...]
    box: tuple[int, int, int, int]
    phi: bool


@dataclass
class Score:
    """Counts of PHI boxes found and benign boxes kept."""

    phi_total: int = 0
    phi_found: int = 0
    benign_total: int = 0
    benign_kept: int = 0

    def add(self, other: Score) -> None:
        """Accumulate another score."""
        self.phi_total += other.phi_total
        self.phi_found += other.phi_found
        self.benign_total += other.benign_total
        self.benign_kept += other.benign_kept

    @property
    def recall(self) -> float:
        """Share of PHI boxes found (1.0 when there were none)."""
        return self.phi_found / self.phi_total if self.phi_total else 1.0

    @property
    def kept(self) -> float:
        """Share of benign boxes left unchanged (1.0 when there were none)."""
        return self.benign_kept / self.benign_total if self.benign_total else 1.0


def _region(frames: npt.NDArray[np.generic], f: int, box: Sequence[int]) -> npt.NDArray[np.generic]:
    x0, y0, x1, y1 = box
    region = frames[f, y0:y1, x0:x1]
    return region.reshape(region.shape[0] * region.shape[1], -1)


def text_removed(before: npt.NDArray[np.generic], after: npt.NDArray[np.generic]) -> bool:
    """True when ``after`` (pixels x samples) is almost uniform and differs from ``before``."""
    if after.size == 0 or np.array_equal(before, after):
        return False
    _, counts = np.unique(after, axis=0, return_counts=True)
    return bool(counts.max() / after.shape[0] >= UNIFORM_SHARE)


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
            score.phi_found += all(text_removed(b, a) for b, a in pairs)
        else:
            score.benign_total += 1
            score.benign_kept += all(np.array_equal(b, a) for b, a in pairs)
    return score
