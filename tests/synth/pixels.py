"""Synthetic pixel phantoms, one per modality (numpy only, deterministic from a Generator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


@dataclass
class Phantom:
    """Pixel data plus what the header needs to describe it.

    ``frames`` has shape ``(F, H, W)`` (monochrome) or ``(F, H, W, 3)`` (RGB).  ``display_lo`` /
    ``display_hi`` are the stored values that display as black / white (for MONOCHROME1 the
    lower value displays white, so ``display_lo > display_hi`` there).
    """

    frames: NDArray[np.integer]
    photometric: str
    bits_stored: int
    signed: bool
    display_lo: float
    display_hi: float
    window: tuple[float, float] | None = None  # (center, width) in rescaled units
    rescale: tuple[float, float] | None = None  # (intercept, slope)

    @property
    def rgb(self) -> bool:
        """True for three-sample colour data."""
        return self.frames.ndim == 4

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return int(self.frames.shape[1]), int(self.frames.shape[2])


def _grid(rows: int, cols: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Normalised coordinates in [-1, 1] (y, x)."""
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float64)
    return (2 * y / max(rows - 1, 1) - 1), (2 * x / max(cols - 1, 1) - 1)


def _ellipse(
    y: NDArray[np.float64], x: NDArray[np.float64], cy: float, cx: float, ry: float, rx: float
) -> NDArray[np.bool_]:
    return ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0


def ct_phantom(rng: np.random.Generator, size: int) -> Phantom:
    """Axial body slice in HU, stored as signed int16 with RescaleIntercept -1024."""
    y, x = _grid(size, size)
    hu = np.full((size, size), -1000.0)
    hu[_ellipse(y, x, 0.05, 0.0, 0.7, 0.85)] = 40.0
    for side in (-1, 1):
        hu[_ellipse(y, x, -0.05, side * 0.4, 0.45, 0.28)] = -820.0
    hu[_ellipse(y, x, 0.55, 0.0, 0.12, 0.12)] = 700.0
    cy, cx = rng.uniform(-0.3, 0.3), rng.uniform(-0.5, 0.5)
    hu[_ellipse(y, x, cy, cx, 0.06, 0.06)] = rng.uniform(60, 200)
    hu += rng.normal(0, 12, hu.shape)
    stored = np.clip(hu + 1024, -1000, 4000).astype(np.int16)
    return Phantom(
        stored[None], "MONOCHROME2", 16, True, 1064 - 200, 1064 + 200, (40, 400), (-1024.0, 1.0)
    )


def mr_phantom(rng: np.random.Generator, size: int) -> Phantom:
    """Axial head-like slice, 12-bit unsigned."""
    y, x = _grid(size, size)
    img = np.zeros((size, size))
    img[_ellipse(y, x, 0, 0, 0.85, 0.7)] = 1600
    img[_ellipse(y, x, 0, 0, 0.78, 0.63)] = 900
    img[_ellipse(y, x, 0, 0, 0.25, 0.1)] = 2600
    img[_ellipse(y, x, rng.uniform(-0.4, 0.4), rng.uniform(-0.3, 0.3), 0.08, 0.1)] = 3200
    img += np.abs(rng.normal(0, 40, img.shape))
    stored = np.clip(img, 0, 4095).astype(np.uint16)
    return Phantom(stored[None], "MONOCHROME2", 12, False, 0, 3000, (1500, 3000))


def dx_phantom(rng: np.random.Generator, size: int, mono1: bool) -> Phantom:
    """Chest radiograph-like image, 12-bit unsigned, MONOCHROME1 when ``mono1``."""
    y, x = _grid(size, size)
    att = 3000 - 600 * (y + 1)  # brighter (more attenuation) towards the abdomen
    for side in (-1, 1):
        att[_ellipse(y, x, -0.1, side * 0.42, 0.6, 0.3)] -= 1500
    att[np.abs(x) < 0.1] += 600
    att += rng.normal(0, 30, att.shape)
    att = np.clip(att, 0, 4095)
    if mono1:
        return Phantom(
            np.round(4095 - att).astype(np.uint16)[None],
            "MONOCHROME1",
            12,
            False,
            4095,
            0,
            (2048, 4096),
        )
    return Phantom(
        np.round(att).astype(np.uint16)[None], "MONOCHROME2", 12, False, 0, 4095, (2048, 4096)
    )


def us_phantom(rng: np.random.Generator, rows: int, cols: int, frames: int) -> Phantom:
    """RGB cine loop: a speckled sector with a bright structure that moves frame to frame."""
    y = np.arange(rows, dtype=np.float64)[:, None]
    x = np.arange(cols, dtype=np.float64)[None, :] - cols / 2
    radius = np.hypot(y, x)
    angle = np.arctan2(x, y + 1e-9)
    sector = (np.abs(angle) < 0.6) & (radius > rows * 0.08) & (radius < rows * 0.95)
    out = np.zeros((frames, rows, cols, 3), dtype=np.uint8)
    for f in range(frames):
        speckle = rng.rayleigh(40, (rows, cols))
        cy = rows * (0.35 + 0.3 * f / max(frames - 1, 1))
        blob = np.exp(-(((y - cy) / (rows * 0.08)) ** 2) - ((x / (cols * 0.1)) ** 2)) * 180
        grey = np.clip((speckle + blob) * sector, 0, 255).astype(np.uint8)
        out[f] = grey[..., None]
    return Phantom(out, "RGB", 8, False, 0, 255)


def sc_phantom(rng: np.random.Generator, rows: int, cols: int, rgb: bool) -> Phantom:
    """A screenshot: a dark UI, a greyscale viewport and a few coloured widgets."""
    img = np.full((rows, cols, 3), 30, dtype=np.uint8)
    top, left = rows // 6, cols // 8
    view = rng.normal(90, 25, (rows - 2 * top, cols - 2 * left))
    yy, xx = _grid(*view.shape)
    view[_ellipse(yy, xx, 0, 0, 0.6, 0.5)] += 80
    img[top : rows - top, left : cols - left] = np.clip(view, 0, 255).astype(np.uint8)[..., None]
    img[rows - top // 2 :, : cols // 3] = (rng.integers(40, 200), 90, 160)
    if rgb:
        return Phantom(img[None], "RGB", 8, False, 0, 255)
    return Phantom(img[None, ..., 0].copy(), "MONOCHROME2", 8, False, 0, 255)
