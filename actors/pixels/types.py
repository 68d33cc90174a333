"""Small value types and protocols shared by the pixel PHI pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

#: What is asked of the pixel step per instance: ``auto`` follows the risk policy (a ``sample``
#: or ``presence`` series counts as scanned here; the series plan decides which of its
#: instances are OCRed),
#: ``always`` OCRs every instance with pixel data.  (``deid.pixels: never`` builds no step.)
ScanRequest = Literal["auto", "always"]
FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True, order=True)
class Box:
    """An axis-aligned box in image pixels; ``x1``/``y1`` are exclusive."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def area(self) -> int:
        """Number of pixels inside the box (0 when empty)."""
        return max(0, self.x1 - self.x0) * max(0, self.y1 - self.y0)

    @property
    def height(self) -> int:
        """Box height in pixels."""
        return max(0, self.y1 - self.y0)

    @property
    def width(self) -> int:
        """Box width in pixels."""
        return max(0, self.x1 - self.x0)

    def expand(self, margin: int, width: int, height: int) -> Box:
        """The box grown by ``margin`` on every side, clipped to a ``width`` x ``height`` image."""
        return Box(
            max(0, self.x0 - margin),
            max(0, self.y0 - margin),
            min(width, self.x1 + margin),
            min(height, self.y1 + margin),
        )

    def union(self, other: Box) -> Box:
        """The smallest box holding both."""
        return Box(
            min(self.x0, other.x0),
            min(self.y0, other.y0),
            max(self.x1, other.x1),
            max(self.y1, other.y1),
        )

    def intersection(self, other: Box) -> int:
        """Area shared with ``other``."""
        w = min(self.x1, other.x1) - max(self.x0, other.x0)
        h = min(self.y1, other.y1) - max(self.y0, other.y0)
        return max(0, w) * max(0, h)


#: Degrees (counter-clockwise, as ``np.rot90``) a crop is turned before it is read.
Rotation = Literal[0, 90, 180, 270]


@dataclass(frozen=True)
class Recognition:
    """What the recogniser read in one crop: text, mean confidence, char positions (0..1).

    ``rotation``: how far the crop was turned to be read (0: as it stands).  The character
    positions are fractions of the width of the crop as read, so they place characters in the
    image only when ``rotation`` is 0.
    """

    text: str
    confidence: float
    char_spans: tuple[tuple[float, float], ...] = ()
    rotation: Rotation = 0


@dataclass(frozen=True)
class TextRegion:
    """A detected text line with its recognition and the PHI decision."""

    box: Box
    text: str
    confidence: float
    phi: bool = False
    reasons: tuple[str, ...] = field(default_factory=tuple)


class TextDetector(Protocol):
    """Finds text lines in one RGB uint8 image (H x W x 3)."""

    def detect(self, image: UInt8Array) -> list[Box]:
        """Return axis-aligned text line boxes in the image's pixel coordinates."""
        ...


class TextRecognizer(Protocol):
    """Reads the text of RGB uint8 crops (h x w x 3)."""

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        """Return one recognition per crop, in order."""
        ...


@runtime_checkable
class DirectionClassifier(Protocol):
    """Tells which crops of horizontal text lines show their text upside down."""

    def upside_down(self, crops: list[UInt8Array]) -> list[bool]:
        """Per crop, whether its text is turned by 180 degrees (by the model's threshold)."""
        ...
