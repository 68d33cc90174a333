"""The independent verify: a second OCR engine reads the whole redacted image.

PP-OCR's verify pass reads again only the lines its own detector found, so text that detector
never saw is never checked.  Tesseract (a different detector and recogniser: Leptonica page
layout analysis and Tesseract's LSTM) reads every OCRed image after the fills; any PHI it can
read (a header value, a labelled value, a date, an age: :func:`~dxai.actors.pixels.phi.legible_phi`
evidence, never "any text") holds the instance with its own reason, ``second_reader_phi``.

A speckled display (a percentile-windowed tomosynthesis slice or noisy radiograph: noise above
``NOISY_SIGMA`` grey levels by Immerkaer's estimate) is denoised first (OpenCV's non-local
means, strength the estimated noise): read as it is, its speckle becomes hundreds of one-glyph
"lines", each recognised and retried inverted (0.7 s on one 800 x 576 slice instead of 0.1 s),
and text strokes, repeated patterns far above the noise, come out sharper (on the real burned-in
set Tesseract reads 3 ground-truth texts on the three speckled files instead of 1).  Clean
displays are read as they are.

The engine is Debian's ``tesseract-ocr`` data (``eng.traineddata``) through ``tesserocr``, one
API per thread (an API is not thread-safe; recognition releases the GIL).  Never a silent
fallback: when the policy asks for it and it cannot load, building the redactor raises
:class:`~dxai.configs.errors.ConfigError` naming the key.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np
from PIL import Image

from dxai.actors.pixels.types import Box, UInt8Array
from dxai.configs.errors import ConfigError
from dxai.observability.logging import get_logger

log = get_logger(__name__)

REASON = "second_reader_phi"
KEY = "deid.pixel_policy.second_reader"
# where Debian and Ubuntu put the language data (tesseract-ocr-eng), newest first
_DATA_GLOB = "/usr/share/tesseract-ocr/*/tessdata"
# images narrower than this are read upscaled to this width: small print on a small image (on
# the real set, 640 reads more ground-truth text than twice the width, in less time)
_MIN_WIDTH = 640
# noise (grey levels, Immerkaer's estimate) above which a display is smoothed before reading:
# clean CT/MR/CR displays measure 0.5-10, speckled DX/DBT/portable chest ones 20-40
NOISY_SIGMA = 15.0
# non-local means: the patch compared, and the window searched for similar patches (pixels)
_PATCH = 5
_SEARCH = 11
# a display whose median level is below this has a dark background (inverted before reading)
DARK_MEDIAN = 128
_LAPLACE = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)


def noise_sigma(grey: UInt8Array) -> float:
    """Immerkaer's fast estimate of the noise standard deviation of a grey image (levels)."""
    height, width = grey.shape[:2]
    if height < 3 or width < 3:
        return 0.0
    response = cv2.filter2D(grey.astype(np.float32), -1, _LAPLACE)[1:-1, 1:-1]
    total = float(np.abs(response).sum())
    area = float((width - 2) * (height - 2))
    return total * math.sqrt(math.pi / 2.0) / (6.0 * area)


def dark_on_light(grey: UInt8Array) -> UInt8Array:
    """``grey`` inverted when its background (median level) is dark.

    Tesseract reads a line as dark text on light first and tries it inverted only when that
    reading is poor: white text on a dark display (most medical images) would be read twice.
    Lines of the other polarity are still found by that retry.  Inverting moves no pixel.
    """
    if float(np.median(grey[::4, ::4])) >= DARK_MEDIAN:
        return grey
    return np.asarray(255 - grey, dtype=np.uint8)


def quieted(grey: UInt8Array) -> UInt8Array:
    """``grey`` as it is, or denoised when it is speckled (module text)."""
    sigma = noise_sigma(grey)
    if sigma < NOISY_SIGMA:
        return grey
    clean = cv2.fastNlMeansDenoising(
        grey, None, h=sigma, templateWindowSize=_PATCH, searchWindowSize=_SEARCH
    )
    return np.asarray(clean, dtype=np.uint8)


@dataclass(frozen=True)
class ReadLine:
    """One text line the second reader read: where, what, how sure (0..1)."""

    box: Box
    text: str
    confidence: float


class SecondReader(Protocol):
    """Reads every text line of a whole RGB uint8 image."""

    name: str

    def read(self, image: UInt8Array) -> list[ReadLine]:
        """The lines read on ``image``, in image pixel coordinates."""
        ...


def tessdata_dir(configured: str | None) -> Path:
    """The folder holding ``eng.traineddata``: the configured one, else ``TESSDATA_PREFIX``,
    else Debian's; ConfigError when none holds it."""
    candidates = [configured] if configured else []
    if not configured:
        candidates += [os.environ.get("TESSDATA_PREFIX", "")]
        candidates += sorted((str(p) for p in Path("/").glob(_DATA_GLOB.lstrip("/"))), reverse=True)
    for folder in filter(None, candidates):
        if (Path(folder) / "eng.traineddata").is_file():
            return Path(folder)
    raise ConfigError(
        f"{KEY}: tesseract language data (eng.traineddata) not found; install Debian's "
        "tesseract-ocr, set deid.pixel_policy.tessdata_dir, or set second_reader: none"
    )


class TesseractReader:
    """Tesseract through tesserocr: sparse-text page segmentation, line by line."""

    name = "tesseract"

    def __init__(self, data_dir: str | None = None) -> None:
        """Check the binding and the language data now (ConfigError when missing)."""
        try:
            import tesserocr
        except ImportError as exc:
            raise ConfigError(f"{KEY}: the tesserocr package is not installed") from exc
        self._tesserocr: Any = tesserocr
        self.data_dir = tessdata_dir(data_dir)
        self.version = str(tesserocr.tesseract_version()).split()[1]
        self._local = threading.local()
        self._api()  # fail at build time, not on the first instance
        log.info(
            "second reader loaded",
            extra={"component": "pixels", "backend": f"tesseract {self.version}"},
        )

    def _api(self) -> Any:
        api = getattr(self._local, "api", None)
        if api is None:
            tess = self._tesserocr
            try:
                api = tess.PyTessBaseAPI(
                    path=f"{self.data_dir}/", lang="eng", psm=tess.PSM.SPARSE_TEXT
                )
            except RuntimeError as exc:
                raise ConfigError(f"{KEY}: tesseract failed to start: {exc}") from exc
            self._local.api = api
        return api

    def read(self, image: UInt8Array) -> list[ReadLine]:
        """The text lines Tesseract reads on ``image`` (upscaled when small)."""
        height, width = image.shape[:2]
        scale = max(1.0, _MIN_WIDTH / max(width, 1))
        grey = quieted(np.asarray(Image.fromarray(image).convert("L")))
        pil = Image.fromarray(dark_on_light(grey))
        if scale > 1.0:
            size = (round(width * scale), round(height * scale))
            pil = pil.resize(size, Image.Resampling.BICUBIC)
        api = self._api()
        api.SetImage(pil)
        api.Recognize()
        return [_scaled(line, scale) for line in self._lines(api)]

    def _lines(self, api: Any) -> Iterator[ReadLine]:
        level = self._tesserocr.RIL.TEXTLINE
        found = api.GetIterator()
        if found is None:  # nothing on the page
            return
        for item in self._tesserocr.iterate_level(found, level):
            try:
                text = (item.GetUTF8Text(level) or "").strip()
            except RuntimeError:  # tesserocr's "No text returned": an empty line
                continue
            box = item.BoundingBox(level)
            if text and box is not None:
                yield ReadLine(Box(*box), text, float(item.Confidence(level)) / 100.0)


def _scaled(line: ReadLine, scale: float) -> ReadLine:
    if scale == 1.0:
        return line
    b = line.box
    box = Box(
        math.floor(b.x0 / scale),
        math.floor(b.y0 / scale),
        math.ceil(b.x1 / scale),
        math.ceil(b.y1 / scale),
    )
    return ReadLine(box, line.text, line.confidence)


def build_second_reader(kind: str, data_dir: str | None) -> SecondReader | None:
    """The second reader the policy names (``none``: None)."""
    if kind == "none":
        return None
    return TesseractReader(data_dir)
