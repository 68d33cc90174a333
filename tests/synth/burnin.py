"""Burn text into pixel frames and report the tight box of every rendered string."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw

from dxai.synth.fonts import FontType, font_count, load_font
from dxai.synth.manifest import BurnedInText, BurnedKind, pack_ink
from dxai.synth.pixels import Phantom

Box = tuple[int, int, int, int]
REGIONS = ("tl", "tr", "bl", "br", "top", "bottom")
_MARGIN = 3
_PAD = 2


@dataclass(frozen=True)
class TextItem:
    """A string to burn in: where it prefers to go, and whether it is PHI."""

    text: str
    kind: BurnedKind
    phi: bool
    region: str
    frames: tuple[int, ...] | None = None  # None: every frame
    scale_bar: bool = False


@dataclass(frozen=True)
class Style:
    """How text looks: foreground/background display levels in [0, 1] and an RGB colour."""

    fg: float
    bg: float | None
    colour: tuple[int, int, int]


STYLES = (
    Style(1.0, None, (255, 255, 255)),  # white on the image
    Style(0.8, None, (255, 255, 0)),  # light grey / yellow on the image
    Style(0.7, 0.45, (190, 190, 190)),  # grey on grey (low contrast)
    Style(0.05, 0.9, (20, 20, 20)),  # dark on a light box
    Style(0.95, 0.0, (0, 255, 0)),  # bright on a black box
)


@dataclass
class Layout:
    """Placement bookkeeping for one image: what is already taken."""

    rows: int
    cols: int
    taken: list[tuple[Box, frozenset[int]]] = field(default_factory=list)

    def free(self, box: Box, frames: frozenset[int]) -> bool:
        """True if ``box`` lies inside the image and overlaps nothing taken on these frames."""
        x0, y0, x1, y1 = box
        if x0 < 1 or y0 < 1 or x1 > self.cols - 1 or y1 > self.rows - 1:
            return False
        return all(
            x1 + _PAD <= a0 or a1 + _PAD <= x0 or y1 + _PAD <= b0 or b1 + _PAD <= y0
            for (a0, b0, a1, b1), used in self.taken
            if used & frames
        )

    def candidates(self, region: str, w: int, h: int) -> list[tuple[int, int]]:
        """Top-left corners to try for a ``w`` x ``h`` block in ``region`` (nearest first)."""
        right, bottom = self.cols - _MARGIN - w, self.rows - _MARGIN - h
        centre = (self.cols - w) // 2
        xs = {"tl": _MARGIN, "bl": _MARGIN, "tr": right, "br": right, "top": centre}
        x = xs.get(region, centre)
        step = max(h // 3, 2)
        if region in ("tl", "tr", "top"):
            return [(x, y) for y in range(_MARGIN, self.rows // 2, step)]
        return [(x, y) for y in range(bottom, self.rows // 2, -step)]


def _ink_box(mask: NDArray[np.uint8]) -> Box | None:
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def _render(
    layout: Layout, item: TextItem, font: FontType, frames: frozenset[int]
) -> tuple[NDArray[np.uint8], Box] | None:
    """Render ``item`` at the first free spot of its region; the mask and its ink box."""
    probe = ImageDraw.Draw(Image.new("L", (1, 1)))
    left, t, r, b = (int(v) for v in probe.textbbox((0, 0), item.text, font=font))
    w, h = r - left, b - t + (6 if item.scale_bar else 0)
    for x, y in layout.candidates(item.region, w, h):
        if not layout.free((x - 1, y - 1, x + w + 1, y + h + 1), frames):
            continue
        image = Image.new("L", (layout.cols, layout.rows), 0)
        ImageDraw.Draw(image).text((x - left, y - t), item.text, font=font, fill=255)
        mask = np.asarray(image, dtype=np.uint8)
        box = _ink_box(mask)
        if box is None or not layout.free(box, frames):
            continue
        layout.taken.append(((x - 1, y - 1, x + w + 1, y + h + 1), frames))
        return mask, box
    return None


def _level(phantom: Phantom, frac: float) -> float:
    return phantom.display_lo + frac * (phantom.display_hi - phantom.display_lo)


def _paint(
    phantom: Phantom,
    frames: list[int],
    mask: NDArray[np.uint8],
    box: Box,
    style: Style,
    bar: Box | None,
) -> None:
    """Blend the text (and its background box / scale bar) into the given frames."""
    alpha = mask.astype(np.float64) / 255.0
    x0, y0, x1, y1 = box
    info = np.iinfo(phantom.frames.dtype)
    for f in frames:
        frame = phantom.frames[f].astype(np.float64)
        fg: float | NDArray[np.float64] = _level(phantom, style.fg)
        if phantom.rgb:
            fg = np.asarray(style.colour, dtype=np.float64)
            alpha_f = alpha[..., None]
        else:
            alpha_f = alpha
        if style.bg is not None:
            bg = (255.0 * style.bg) if phantom.rgb else _level(phantom, style.bg)
            frame[max(y0 - _PAD, 0) : y1 + _PAD, max(x0 - _PAD, 0) : x1 + _PAD] = bg
        frame = frame * (1 - alpha_f) + fg * alpha_f
        if bar is not None:
            frame[bar[1] : bar[3], bar[0] : bar[2]] = fg
        phantom.frames[f] = np.clip(np.round(frame), info.min, info.max).astype(info.dtype)


def burn_in(phantom: Phantom, items: list[TextItem], rng: random.Random) -> list[BurnedInText]:
    """Burn ``items`` into ``phantom`` (in place) with varied fonts, sizes and contrast.

    Items that cannot be placed without overlapping are skipped (and not reported).
    """
    rows, cols = phantom.shape
    layout = Layout(rows, cols)
    n_frames = int(phantom.frames.shape[0])
    max_size = max(10, min(32, rows // 7))
    out: list[BurnedInText] = []
    for item in items:
        font = load_font(rng.randrange(font_count()), rng.randint(10, max_size))
        frames = list(item.frames) if item.frames is not None else list(range(n_frames))
        placed = _render(layout, item, font, frozenset(frames))
        if placed is None:
            continue
        mask, box = placed
        bar = (box[0], box[3] + 3, box[2], box[3] + 5) if item.scale_bar else None
        _paint(phantom, frames, mask, box, rng.choice(STYLES), bar)
        ink = pack_ink(mask[box[1] : box[3], box[0] : box[2]] >= 128)
        record = BurnedInText(
            frames=frames, box=list(box), text=item.text, phi=item.phi, kind=item.kind, ink=ink
        )
        out.append(record)
    return out
