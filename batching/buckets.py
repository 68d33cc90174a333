"""Shape buckets: pad items up to a few sizes, stack them, crop each output back.

Pure functions shared by the in-process batcher and the Ray Serve deployment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from dxai.configs.errors import InvalidInferenceInputError
from dxai.engines.spec import ModelSpec

FloatArray = NDArray[np.float32]
Bucket = tuple[int, int]


def validate_item(model: ModelSpec, item: object) -> FloatArray:
    """``item`` as a float32 CHW array matching ``model``; InvalidInferenceInputError if not."""
    if not isinstance(item, np.ndarray):
        raise InvalidInferenceInputError(f"model {model.name}: item must be a numpy array")
    if item.ndim != 3 or item.shape[0] != model.channels:
        raise InvalidInferenceInputError(
            f"model {model.name}: item shape {item.shape} is not ({model.channels}, H, W)"
        )
    if item.dtype != np.float32:
        raise InvalidInferenceInputError(f"model {model.name}: item dtype {item.dtype} != float32")
    if item.shape[1] < 1 or item.shape[2] < 1:
        raise InvalidInferenceInputError(f"model {model.name}: empty item {item.shape}")
    return item


def _round_up(value: int, multiple: int) -> int:
    return int(math.ceil(value / multiple) * multiple)


def bucket_for(model: ModelSpec, height: int, width: int, *, exact: bool = False) -> Bucket:
    """The smallest bucket holding ``(height, width)``; beyond the largest, pad or refuse.

    ``exact`` (``batching.shapes``): the item's own size rounded up to the model's
    ``pad_multiple``, for engines that take any shape; a model that refuses items beyond its
    buckets has a fixed input and keeps them.
    """
    if exact and model.oversize == "pad":
        mh, mw = model.pad_multiple
        return _round_up(height, mh), _round_up(width, mw)
    fits = [(h * w, (h, w)) for h, w in model.buckets if h >= height and w >= width]
    if fits:
        return min(fits)[1]
    if model.oversize == "reject":
        raise InvalidInferenceInputError(
            f"model {model.name}: item {height}x{width} exceeds every bucket {model.buckets}"
        )
    mh, mw = model.pad_multiple
    return _round_up(height, mh), _round_up(width, mw)


def pad_stack(items: Sequence[FloatArray], bucket: Bucket, pad_value: float) -> FloatArray:
    """Stack CHW items into one NCHW batch of the bucket's size, each placed top-left."""
    h, w = bucket
    batch = np.empty((len(items), items[0].shape[0], h, w), dtype=np.float32)
    pad_into(batch, items, pad_value)
    return batch


def pad_into(out: FloatArray, items: Sequence[FloatArray], pad_value: float) -> None:
    """Write ``items`` top-left into ``out`` (N, C, H, W) and pad the rest of each row."""
    height, width = out.shape[2], out.shape[3]
    for i, item in enumerate(items):
        h, w = item.shape[1], item.shape[2]
        out[i, :, :h, :w] = item
        if h < height:
            out[i, :, h:, :] = pad_value
        if w < width:
            out[i, :, :h, w:] = pad_value


def crop_output(model: ModelSpec, output: FloatArray, height: int, width: int) -> FloatArray:
    """One item's output cropped back to its un-padded size (a fresh, contiguous array)."""
    post = model.postprocess
    if post.crop == "spatial":
        oh, ow = math.ceil(height / post.stride), math.ceil(width / post.stride)
        return np.ascontiguousarray(output[..., :oh, :ow])
    if post.crop == "sequence":
        return np.ascontiguousarray(output[: math.ceil(width / post.stride)])
    return np.array(output, dtype=np.float32, copy=True)


def group_by_bucket(model: ModelSpec, items: Sequence[FloatArray]) -> dict[Bucket, list[int]]:
    """Indices of ``items`` grouped by their bucket (insertion order kept)."""
    groups: dict[Bucket, list[int]] = {}
    for idx, item in enumerate(items):
        groups.setdefault(bucket_for(model, item.shape[1], item.shape[2]), []).append(idx)
    return groups
