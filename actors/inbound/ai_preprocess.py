"""One instance → one model item: decode, rescale, window, bilinear resample, normalise.

CPU work: callers run :func:`prepare_item` in a worker thread (``asyncio.to_thread``).  Any
instance that cannot become an item raises :class:`InvalidDicomError` (PHI-free message).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt
from pydicom.dataset import Dataset

from dxai.actors.inbound.study import InstanceRef
from dxai.actors.pixels.codec import MAX_DECODED_BYTES, decoded_size
from dxai.batching.buckets import FloatArray
from dxai.configs.errors import InvalidDicomError
from dxai.configs.schema.ai_tasks import PreprocessConfig

Float64Array = npt.NDArray[np.float64]
_LUMA = np.array([0.299, 0.587, 0.114])


def _first_number(value: object) -> float | None:
    """The first value of a (possibly multi-valued) numeric attribute; None if unusable."""
    if value is None or isinstance(value, bytes):
        return None
    if not isinstance(value, str) and isinstance(value, Sequence):
        value = value[0] if len(value) else None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if np.isfinite(number) else None


def _decode(ds: Dataset) -> npt.NDArray[np.generic]:
    """The stored pixels (decoded by pydicom); InvalidDicomError on any decoder failure."""
    if "PixelData" not in ds:
        raise InvalidDicomError("instance has no Pixel Data")
    try:
        size = decoded_size(ds)
    except (TypeError, ValueError) as exc:
        raise InvalidDicomError("image geometry is not a number") from exc
    if size <= 0 or size > MAX_DECODED_BYTES:
        raise InvalidDicomError(f"decoded pixel data size out of range ({size} bytes)")
    try:
        return np.asarray(ds.pixel_array)
    except BaseException as exc:  # decoders raise many types (a Rust plugin panics): boundary
        if not isinstance(exc, Exception) and type(exc).__name__ != "PanicException":
            raise
        raise InvalidDicomError(f"pixel data could not be decoded ({type(exc).__name__})") from exc


def _one_frame(ds: Dataset, arr: npt.NDArray[np.generic]) -> Float64Array:
    """The middle frame as ``H x W`` (grey) or ``H x W x 3`` (colour), float64."""
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1 and arr.ndim >= 3:
        arr = arr[arr.shape[0] // 2]
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] != 3) or arr.size == 0:
        raise InvalidDicomError(f"unexpected pixel array shape {arr.shape}")
    return np.asarray(arr, dtype=np.float64)


def _rescaled(ds: Dataset, image: Float64Array, pre: PreprocessConfig) -> Float64Array:
    if not pre.apply_rescale or image.ndim != 2:
        return image
    slope = _first_number(ds.get("RescaleSlope"))
    intercept = _first_number(ds.get("RescaleIntercept"))
    return image * (1.0 if slope is None else slope) + (0.0 if intercept is None else intercept)


def _window_bounds(ds: Dataset, image: Float64Array, pre: PreprocessConfig) -> tuple[float, float]:
    center, width = pre.window_center, pre.window_width
    if pre.window == "auto":
        center = _first_number(ds.get("WindowCenter"))
        width = _first_number(ds.get("WindowWidth"))
    if pre.window in ("auto", "fixed") and center is not None and width is not None and width > 0:
        return center - width / 2.0, center + width / 2.0
    return float(image.min()), float(image.max())


def windowed(ds: Dataset, image: Float64Array, pre: PreprocessConfig) -> Float64Array:
    """``image`` mapped linearly to [0, 1] by the configured window (``none``: unchanged);
    MONOCHROME1 is inverted so that bright means dense in every item."""
    if pre.window == "none":
        return image
    low, high = _window_bounds(ds, image, pre)
    span = high - low
    out = np.clip((image - low) / span, 0.0, 1.0) if span > 0 else np.zeros_like(image)
    if str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1":
        out = 1.0 - out
    return out


def _to_channels(image: Float64Array, channels: int) -> Float64Array:
    """``C x H x W``: RGB kept when 3 channels are wanted, else luminance replicated."""
    if image.ndim == 3 and channels == 3:
        return np.ascontiguousarray(np.moveaxis(image, -1, 0))
    grey = image @ _LUMA if image.ndim == 3 else image
    return np.repeat(grey[np.newaxis], channels, axis=0)


def _resampled(image: Float64Array, size: tuple[int, int]) -> Float64Array:
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    out = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return np.asarray(out, dtype=np.float64).reshape((height, width, *image.shape[2:]))


def _normalised(chw: Float64Array, pre: PreprocessConfig) -> FloatArray:
    mean = np.asarray(pre.mean, dtype=np.float64).reshape(-1, 1, 1)
    std = np.asarray(pre.std, dtype=np.float64).reshape(-1, 1, 1)
    out = ((chw - mean) / std).astype(np.float32)
    if not np.isfinite(out).all():
        raise InvalidDicomError("pixel values are not finite after preprocessing")
    return np.ascontiguousarray(out)


def preprocess_dataset(ds: Dataset, pre: PreprocessConfig) -> FloatArray:
    """``ds``'s pixels as a float32 ``channels x size[0] x size[1]`` item."""
    image = _one_frame(ds, _decode(ds))
    image = windowed(ds, _rescaled(ds, image, pre), pre)
    image = _resampled(image, pre.size)
    return _normalised(_to_channels(image, pre.channels), pre)


def prepare_item(ref: InstanceRef, pre: PreprocessConfig) -> FloatArray:
    """Load ``ref`` and turn it into a model item; :class:`InvalidDicomError` when it cannot."""
    return preprocess_dataset(ref.load(), pre)
