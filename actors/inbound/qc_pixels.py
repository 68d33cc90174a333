"""Pixel checks of one series: missing, truncated, undecodable, blank and saturated images.

Every image instance is loaded (not decoded) and, in a native transfer syntax, its Pixel Data
length compared with what the header describes (Rows x Columns x samples x bits x frames).  Up
to ``pixel_check_max_per_series`` instances spread over the series are also decoded.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError

from dxai.actors.inbound.qc_findings import Emitter
from dxai.actors.inbound.qc_values import frames, integer, is_image, is_picture, text
from dxai.actors.inbound.study import InstanceRef, SeriesView
from dxai.actors.pixels.codec import decode
from dxai.configs.errors import InvalidDicomError
from dxai.configs.schema.qc import QcConfig

NATIVE_SYNTAXES = frozenset(
    {
        uid.ImplicitVRLittleEndian,
        uid.ExplicitVRLittleEndian,
        uid.ExplicitVRBigEndian,
        uid.DeflatedExplicitVRLittleEndian,
    }
)
PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
#: what loading a damaged instance raises (the loader's contract, and pydicom underneath it).
LOAD_ERRORS = (InvalidDicomError, PydicomInvalidDicomError, EOFError, ValueError)


@dataclass
class PixelTally:
    """Per-series results, grouped by finding code: (sop_uid, measurement)."""

    hits: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    loaded: int = 0
    decoded: int = 0


def expected_pixel_bytes(header: Dataset) -> int | None:
    """Bytes of native Pixel Data the header describes (None when it cannot say)."""
    rows, cols = integer(header, "Rows"), integer(header, "Columns")
    bits = integer(header, "BitsAllocated")
    if not rows or not cols or not bits:
        return None
    samples = integer(header, "SamplesPerPixel") or 1
    if text(header, "PhotometricInterpretation").upper() in ("YBR_FULL_422", "YBR_PARTIAL_422"):
        samples = 2  # two luminance and two chrominance values per two pixels
    return math.ceil(rows * cols * frames(header) * samples * bits / 8)


def _pixel_bytes(ds: Dataset) -> bytes | None:
    for keyword in PIXEL_KEYWORDS:
        if keyword in ds:
            value = ds[keyword].value
            return value if isinstance(value, bytes) else b""
    return None


def _load(ref: InstanceRef) -> Dataset | None:
    try:
        return ref.load()
    except LOAD_ERRORS:
        return None


def spread(count: int, most: int) -> set[int]:
    """Up to ``most`` indices spread evenly over ``range(count)`` (first and last included)."""
    if count <= 0 or most <= 0:
        return set()
    if count <= most:
        return set(range(count))
    return {round(i * (count - 1) / (most - 1)) for i in range(most)} if most > 1 else {0}


def _syntax(ref: InstanceRef, ds: Dataset) -> str:
    meta = getattr(ds, "file_meta", None)
    found = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    return ref.transfer_syntax or found


def _check_length(ref: InstanceRef, ds: Dataset, tally: PixelTally) -> bool:
    """Pixel Data present and, when native, as long as the header says; False: do not decode."""
    data = _pixel_bytes(ds)
    if data is None:
        tally.hits["qc.missing_pixel_data"].append((ref.sop_uid, 0.0))
        return False
    expected = expected_pixel_bytes(ds)
    if _syntax(ref, ds) in NATIVE_SYNTAXES and expected is not None and len(data) < expected:
        tally.hits["qc.truncated_pixel_data"].append((ref.sop_uid, float(expected - len(data))))
        return False
    return True


def _decoded(ref: InstanceRef, ds: Dataset) -> npt.NDArray[np.generic] | None:
    if getattr(ds, "file_meta", None) is None:
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta and ref.transfer_syntax:
        ds.file_meta.TransferSyntaxUID = uid.UID(ref.transfer_syntax)
    try:
        return decode(ds).frames
    except InvalidDicomError:
        return None


def _saturation(ds: Dataset, pixels: npt.NDArray[np.generic]) -> float:
    """The share of pixels at the top stored value (grayscale only; 0.0 otherwise)."""
    if not text(ds, "PhotometricInterpretation").upper().startswith("MONOCHROME"):
        return 0.0
    stored = integer(ds, "BitsStored") or integer(ds, "BitsAllocated") or 0
    if stored <= 1 or pixels.size == 0:
        return 0.0
    top = 2 ** (stored - 1) - 1 if integer(ds, "PixelRepresentation") == 1 else 2**stored - 1
    return float(np.mean(pixels == top))


def _check_content(ref: InstanceRef, ds: Dataset, config: QcConfig, tally: PixelTally) -> None:
    pixels = _decoded(ref, ds)
    if pixels is None:
        tally.hits["qc.undecodable_pixel_data"].append((ref.sop_uid, 0.0))
        return
    tally.decoded += 1
    if not is_picture(ds):
        return
    if pixels.size and np.ptp(pixels) == 0:
        tally.hits["qc.blank_image"].append((ref.sop_uid, float(pixels.flat[0])))
        return
    share = _saturation(ds, pixels)
    if share >= config.saturated_fraction:
        tally.hits["qc.saturated_image"].append((ref.sop_uid, share * 100.0))


def check_pixels(series: SeriesView, config: QcConfig, out: Emitter) -> PixelTally:
    """Load every image of ``series``, decode a spread sample, emit one finding per code."""
    images = [r for r in series.instances if is_image(r.header)]
    sample = spread(len(images), config.pixel_check_max_per_series)
    tally = PixelTally()
    for index, ref in enumerate(images):
        ds = _load(ref)
        if ds is None:
            tally.hits["qc.undecodable_pixel_data"].append((ref.sop_uid, 0.0))
            continue
        tally.loaded += 1
        if _check_length(ref, ds, tally) and index in sample:
            _check_content(ref, ds, config, tally)
    _emit(series.series_uid, len(images), tally, out)
    return tally


def _emit(series_uid: str, images: int, tally: PixelTally, out: Emitter) -> None:
    sampled = tally.decoded + len(tally.hits.get("qc.undecodable_pixel_data", ()))
    for code, hits in tally.hits.items():
        uids = [sop for sop, _ in hits]
        worst = max(v for _, v in hits)
        what, value, unit = _WORDING[code](len(hits), images, sampled, worst)
        out.emit(code, f"series {series_uid}: {what}", series_uid, uids, value, unit)


def _missing(n: int, images: int, _s: int, _w: float) -> tuple[str, float | None, str | None]:
    return f"{n} of {images} images have no pixel data", float(n), "{instance}"


def _truncated(n: int, images: int, _s: int, w: float) -> tuple[str, float | None, str | None]:
    text_ = f"{n} of {images} images hold less pixel data than their header describes"
    return f"{text_} (up to {int(w)} bytes short)", w, "By"


def _undecodable(n: int, images: int, _s: int, _w: float) -> tuple[str, float | None, str | None]:
    return f"{n} of {images} images could not be read or decoded", float(n), "{instance}"


def _blank(n: int, _i: int, sampled: int, w: float) -> tuple[str, float | None, str | None]:
    return f"{n} of {sampled} sampled images are blank (one constant value)", float(n), None


def _saturated(n: int, _i: int, sampled: int, w: float) -> tuple[str, float | None, str | None]:
    text_ = f"{n} of {sampled} sampled images are saturated"
    return f"{text_} (up to {w:.0f}% of pixels at the top stored value)", w, "%"


_WORDING = {
    "qc.missing_pixel_data": _missing,
    "qc.truncated_pixel_data": _truncated,
    "qc.undecodable_pixel_data": _undecodable,
    "qc.blank_image": _blank,
    "qc.saturated_image": _saturated,
}
