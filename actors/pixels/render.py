"""Turn decoded DICOM frames into 8-bit RGB images the OCR models can read."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dxai.actors.pixels.types import UInt8Array

SATURATED_LIMIT = 0.97
CLAHE_CLIP = 3.0
# a frame's top level drawn on this many pixels (or this share of them) is burned-in text or
# graphics, not a few hot pixels: the display keeps it above the rest
PLATEAU_MIN_PX = 64
PLATEAU_SHARE = 1e-4
# a window over more stored levels than this hides faint text in 8-bit display
WIDE_WINDOW = 1024.0


@dataclass(frozen=True)
class DisplayInfo:
    """What is needed to display a frame: colour model, window and palette (if any)."""

    photometric: str
    window: tuple[float, float] | None = None
    rescale: tuple[float, float] = (0.0, 1.0)
    palette: npt.NDArray[np.uint8] | None = None

    @property
    def colour(self) -> bool:
        """True when frames have three samples per pixel."""
        return self.photometric in {"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT"}


def _first(value: object) -> float | None:
    if value is None:
        return None
    try:
        seq = list(value) if isinstance(value, list | tuple) else [value]
        return float(str(seq[0]))
    except (TypeError, ValueError, IndexError):
        return None


def display_info(ds: Dataset, palette: npt.NDArray[np.uint8] | None = None) -> DisplayInfo:
    """Read display settings from a (decoded) dataset; tolerant of odd values."""
    center, width = _first(ds.get("WindowCenter")), _first(ds.get("WindowWidth"))
    window = (center, width) if center is not None and width and width > 1 else None
    slope = _first(ds.get("RescaleSlope")) or 1.0
    intercept = _first(ds.get("RescaleIntercept")) or 0.0
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip()
    return DisplayInfo(photometric, window, (intercept, slope), palette)


def _scale(values: npt.NDArray[np.float32], lo: float, hi: float) -> npt.NDArray[np.float32]:
    out: npt.NDArray[np.float32] = np.clip((values - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
    return out


def mono_to_unit(frame: npt.NDArray[np.generic], info: DisplayInfo) -> npt.NDArray[np.float32]:
    """Monochrome frame to [0, 1] display levels: header window when sensible, else percentiles."""
    values = frame.astype(np.float32) * info.rescale[1] + info.rescale[0]
    unit: npt.NDArray[np.float32] | None = None
    if info.window is not None:
        c, w = info.window
        unit = _scale(values, c - w / 2.0, c + w / 2.0)
        extreme = float(np.mean((unit <= 0.0) | (unit >= 1.0)))
        if extreme > SATURATED_LIMIT:
            unit = None
    if unit is None:
        lo, hi = _levels(values, np.dtype(frame.dtype).itemsize == 1)
        unit = _scale(values, lo, hi)
    if info.photometric == "MONOCHROME1":
        unit = 1.0 - unit
    return unit


def _levels(values: npt.NDArray[np.float32], eight_bit: bool) -> tuple[float, float]:
    """The display range of a frame without a usable window: its 0.5th to 99.5th percentile,
    widened to its extreme level at either end where that level is drawn on many pixels, and
    to both extremes on an 8-bit frame.

    Burned-in text is often drawn at the frame's top (or, dark on light, bottom) level on under
    0.5% of the pixels: with the percentile there (which lies in the background's noise) the
    noise was stretched as far as the text, and small print on a flat, speckled background
    became unreadable to both OCR engines.  An extreme on a few hot or dead pixels only still
    gets the percentile.
    """
    lo, hi = (float(v) for v in np.percentile(values[::2, ::2], (0.5, 99.5)))
    bottom, top = float(values.min()), float(values.max())
    if eight_bit or _plateau(values, top):
        hi = top
    if eight_bit or _plateau(values, bottom):
        lo = bottom
    if hi - lo < 1e-3:
        lo, hi = bottom, top
    return lo, hi


def _plateau(values: npt.NDArray[np.float32], level: float) -> bool:
    """Whether ``level`` is drawn on enough pixels to be text or graphics, not stray pixels."""
    count = int(np.count_nonzero(values == level))
    return count >= max(PLATEAU_MIN_PX, PLATEAU_SHARE * values.size)


def ybr_to_rgb(frame: npt.NDArray[np.generic]) -> UInt8Array:
    """YCbCr (full range, PS3.3 C.7.6.3.1.2) to RGB, 8-bit."""
    ybr = frame.astype(np.float32)
    y, cb, cr = ybr[..., 0], ybr[..., 1] - 128.0, ybr[..., 2] - 128.0
    rgb = np.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], axis=-1)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def to_display(frame: npt.NDArray[np.generic], info: DisplayInfo) -> UInt8Array:
    """One frame (H x W or H x W x 3) as an H x W x 3 uint8 RGB image."""
    if info.palette is not None:
        return np.ascontiguousarray(
            info.palette[np.clip(frame.astype(np.int64), 0, None) % len(info.palette)]
        )
    if info.colour:
        if info.photometric.startswith("YBR_FULL"):
            return ybr_to_rgb(frame)
        if frame.dtype != np.uint8:
            unit = _scale(frame.astype(np.float32), float(frame.min()), float(frame.max()))
            return np.round(unit * 255).astype(np.uint8)
        return np.ascontiguousarray(frame.astype(np.uint8))
    grey = np.round(mono_to_unit(frame, info) * 255).astype(np.uint8)
    return np.ascontiguousarray(np.repeat(grey[..., None], 3, axis=2))


def enhance(image: UInt8Array) -> UInt8Array:
    """Local contrast enhancement (CLAHE on the grey levels) of an RGB display image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    clahe = cv2.createCLAHE(clipLimit=CLAHE_CLIP, tileGridSize=(8, 8))
    out = clahe.apply(np.ascontiguousarray(grey))
    return np.ascontiguousarray(np.repeat(out[..., None], 3, axis=2))


def wide_window(info: DisplayInfo, dtype: np.dtype[np.generic] | type) -> bool:
    """True for greyscale frames of more than 8 bits shown through a window this wide or none."""
    if info.colour or info.palette is not None or np.dtype(dtype).itemsize == 1:
        return False
    if info.window is None:
        return True
    slope = abs(info.rescale[1]) or 1.0
    return info.window[1] / slope >= WIDE_WINDOW
