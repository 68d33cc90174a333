"""PP-OCRv4 text recogniser pre-processing and CTC greedy decoding; direction classifier input."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from dxai.actors.pixels.types import FloatArray, Recognition, UInt8Array

REC_HEIGHT = 48
MAX_REC_WIDTH = 1280
# the direction classifier's fixed input width (3 x 48 x 192)
CLS_WIDTH = 192


def rec_width(crop_h: int, crop_w: int) -> int:
    """Width a crop gets once resized to the recogniser height (multiple of 8)."""
    width = math.ceil(REC_HEIGHT * crop_w / max(1, crop_h))
    return int(min(MAX_REC_WIDTH, max(16, math.ceil(width / 8) * 8)))


def rec_preprocess(crop: UInt8Array) -> FloatArray:
    """Resize an RGB crop to height 48 and normalise to [-1, 1]; returns 3 x 48 x W."""
    h, w = crop.shape[:2]
    new_w = rec_width(h, w)
    resized = cv2.resize(crop, (new_w, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
    chw = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
    return np.ascontiguousarray((chw - 0.5) / 0.5, dtype=np.float32)


def cls_preprocess(crop: UInt8Array) -> FloatArray:
    """An RGB crop as the direction classifier's 3 x 48 x 192 input (PP-OCR's ``TextClassifier``).

    Resized to height 48 and at most 192 wide (aspect kept), normalised to [-1, 1] and
    right-padded with zeros.
    """
    h, w = crop.shape[:2]
    new_w = max(1, min(CLS_WIDTH, math.ceil(REC_HEIGHT * w / max(1, h))))
    resized = cv2.resize(crop, (new_w, REC_HEIGHT), interpolation=cv2.INTER_LINEAR)
    out = np.zeros((3, REC_HEIGHT, CLS_WIDTH), dtype=np.float32)
    out[:, :, :new_w] = (resized.astype(np.float32).transpose(2, 0, 1) / 255.0 - 0.5) / 0.5
    return out


def pad_batch(items: Sequence[FloatArray]) -> FloatArray:
    """Stack 3 x 48 x W items into one batch, right-padding with zeros to the widest."""
    width = max(item.shape[2] for item in items)
    batch = np.zeros((len(items), 3, REC_HEIGHT, width), dtype=np.float32)
    for i, item in enumerate(items):
        batch[i, :, :, : item.shape[2]] = item
    return batch


def ctc_decode(probs: FloatArray, charset: Sequence[str], used_width: int) -> Recognition:
    """Greedy CTC decoding of a T x C softmax map; ``used_width`` is the unpadded input width.

    Character spans are fractions (0..1) of the crop's width.
    """
    steps = max(1, min(probs.shape[0], math.ceil(used_width / 8)))
    idx = probs[:steps].argmax(axis=1)
    best = probs[:steps].max(axis=1)
    chars: list[str] = []
    confs: list[float] = []
    spans: list[tuple[float, float]] = []
    prev = -1
    for t, k in enumerate(idx.tolist()):
        if k != 0 and k != prev and k < len(charset):
            chars.append(charset[k])
            confs.append(float(best[t]))
            spans.append((t / steps, (t + 1) / steps))
        prev = k
    conf = float(np.mean(confs)) if confs else 0.0
    return Recognition("".join(chars), conf, tuple(spans))


def load_charset(chars: Sequence[str]) -> list[str]:
    """The CTC class list from the model's characters (its labels): blank, chars, space."""
    return ["", *chars, " "]


def width_groups(widths: list[int], max_batch: int, max_ratio: float = 1.4) -> list[list[int]]:
    """Indices grouped into batches of similar width (sorted, at most ``max_batch`` each)."""
    order = sorted(range(len(widths)), key=lambda i: widths[i])
    groups: list[list[int]] = []
    for i in order:
        last = groups[-1] if groups else None
        if last and len(last) < max_batch and widths[i] <= widths[last[0]] * max_ratio:
            last.append(i)
        else:
            groups.append([i])
    return groups


def to_rgb_crop(image: UInt8Array, x0: int, y0: int, x1: int, y1: int) -> UInt8Array:
    """A contiguous copy of an image region."""
    return np.ascontiguousarray(image[y0:y1, x0:x1])
