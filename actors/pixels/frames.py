"""Choosing which frames of a multi-frame instance to OCR, and filling boxes on all frames."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from dxai.actors.pixels.types import Box


def frame_hash(frame: npt.NDArray[np.generic]) -> str:
    """A short content hash of one frame."""
    return hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=12).hexdigest()


def distinct_frames(frames: npt.NDArray[np.generic]) -> list[int]:
    """Index of the first occurrence of every distinct frame, in order."""
    seen: set[str] = set()
    out: list[int] = []
    for i in range(frames.shape[0]):
        digest = frame_hash(frames[i])
        if digest not in seen:
            seen.add(digest)
            out.append(i)
    return out


def sample_frames(distinct: list[int], limit: int) -> list[int]:
    """All distinct frames when few, else first / middle / last (at most ``limit``)."""
    if len(distinct) <= limit:
        return distinct
    picks = np.linspace(0, len(distinct) - 1, num=min(limit, 3)).round().astype(int)
    return sorted({distinct[int(i)] for i in picks})


def projections(frames: npt.NDArray[np.generic]) -> list[npt.NDArray[np.generic]]:
    """Temporal max and min projections: text shown on any frame survives in one of them."""
    return [frames.max(axis=0), frames.min(axis=0)]


def fill_value(
    frames: npt.NDArray[np.generic], photometric: str, palette: npt.NDArray[np.uint8] | None
) -> npt.NDArray[np.generic]:
    """The stored value that displays as black for this colour model."""
    if palette is not None:
        return np.asarray(int(np.argmin(palette.astype(np.int64).sum(axis=1))))
    if photometric in {"RGB"}:
        return np.zeros(3, dtype=frames.dtype)
    if photometric.startswith("YBR"):
        return np.array([0, 128, 128], dtype=frames.dtype)
    return np.asarray(frames.max() if photometric == "MONOCHROME1" else frames.min())


def fill_boxes(
    frames: npt.NDArray[np.generic], boxes: Iterable[Box], value: npt.NDArray[np.generic]
) -> None:
    """Fill ``boxes`` on every frame (in place)."""
    for box in boxes:
        frames[:, box.y0 : box.y1, box.x0 : box.x1] = value
