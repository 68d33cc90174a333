"""PP-OCRv4 text detector pre- and post-processing (DB: differentiable binarisation)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from dxai.actors.pixels.types import Box, FloatArray, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig


@dataclass(frozen=True)
class DetParams:
    """Detector settings: input size limits and DB post-processing thresholds."""

    max_side: int = 960
    # large images are read again in tiles at up to this long side (actors/pixels/tiles.py)
    tile_max_side: int = 1920
    # a short side under this is upscaled to it: 8-px labels on a 394 x 552 radiograph were
    # missed at 384 (tests/integration/test_pixels_small_print.py)
    min_side: int = 512
    max_upscale: float = 4.0
    # the detector input never exceeds this many pixels: upscaling a 64 x 16384 strip to a
    # 512-pixel short side asked for 256 x 65536 (2.2 GB of RSS and 9 s for one instance)
    max_pixels: int = 2_000_000
    thresh: float = 0.3
    box_thresh: float = 0.5
    unclip_ratio: float = 1.6
    max_candidates: int = 1000
    min_size: int = 3
    border: int = 8


def det_params(policy: PixelPolicyConfig) -> DetParams:
    """The detector settings a pixel policy asks for (``det_max_side``, ``det_tile_max_side``)."""
    return DetParams(max_side=policy.det_max_side, tile_max_side=policy.det_tile_max_side)


def det_scale(height: int, width: int, params: DetParams) -> float:
    """Scale factor applied to an image before detection: a long side of at most ``max_side``,
    a short side of at least ``min_side`` (upscaled at most ``max_upscale`` times), and never
    an upscale past ``max_pixels`` detector pixels (extreme strips)."""
    scale = min(params.max_side / max(height, width), 1.0)
    if min(height, width) * scale < params.min_side:
        scale = params.min_side / min(height, width)
    bound = math.sqrt(params.max_pixels / max(1, height * width))
    return min(scale, params.max_upscale, max(bound, params.max_side / max(height, width)))


def det_preprocess(image: UInt8Array, params: DetParams) -> tuple[FloatArray, float, float]:
    """Resize to multiples of 32 and normalise; returns (CHW float32, scale_y, scale_x)."""
    h, w = image.shape[:2]
    scale = det_scale(h, w, params)
    nh = max(32, round(h * scale / 32) * 32)
    nw = max(32, round(w * scale / 32) * 32)
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    chw = resized.astype(np.float32).transpose(2, 0, 1) / 255.0
    chw = (chw - 0.5) / 0.5
    return np.ascontiguousarray(chw, dtype=np.float32), nh / h, nw / w


def detect_boxes(
    image: UInt8Array, params: DetParams, run: Callable[[FloatArray], FloatArray]
) -> list[Box]:
    """Text line boxes of ``image``; ``run`` maps a CHW input to its probability map (H x W).

    The image gets a replicated border first: text touching the image edge is found more
    reliably when the detector sees some background around it.
    """
    prepared = prepare_detection(image, params)
    return finish_detection(prepared, run(prepared.chw), params)


@dataclass(frozen=True)
class PreparedImage:
    """A detector input and what is needed to map its probability map back to the image."""

    chw: FloatArray
    scale_y: float
    scale_x: float
    padded_shape: tuple[int, int]
    shape: tuple[int, int]


def prepare_detection(image: UInt8Array, params: DetParams) -> PreparedImage:
    """Border, resize and normalise ``image`` for the detector."""
    pad = params.border
    padded: UInt8Array = image
    if pad:
        padded = np.asarray(
            cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), dtype=np.uint8
        )
    chw, sy, sx = det_preprocess(padded, params)
    shape = (image.shape[0], image.shape[1])
    return PreparedImage(chw, sy, sx, (padded.shape[0], padded.shape[1]), shape)


def finish_detection(prepared: PreparedImage, prob: FloatArray, params: DetParams) -> list[Box]:
    """Boxes in image pixels from the probability map of a prepared image."""
    pad = params.border
    boxes = det_postprocess(prob, prepared.scale_y, prepared.scale_x, prepared.padded_shape, params)
    height, width = prepared.shape
    out = [
        Box(max(0, b.x0 - pad), max(0, b.y0 - pad), min(width, b.x1 - pad), min(height, b.y1 - pad))
        for b in boxes
    ]
    return [b for b in out if b.width > 3 and b.height > 3]


def _box_score(prob: FloatArray, contour: np.ndarray, rect: tuple[int, int, int, int]) -> float:
    x, y, w, h = rect
    mask = np.zeros((h, w), dtype=np.uint8)
    shifted = contour.reshape(-1, 2) - np.array([x, y])
    cv2.fillPoly(mask, [shifted.astype(np.int32)], 1)
    region = prob[y : y + h, x : x + w]
    return float(cv2.mean(region, mask)[0])


def det_postprocess(
    prob: FloatArray, scale_y: float, scale_x: float, shape: tuple[int, int], params: DetParams
) -> list[Box]:
    """Turn a probability map (H x W) into text line boxes in original image pixels."""
    bitmap = cv2.dilate((prob > params.thresh).astype(np.uint8), np.ones((2, 2), np.uint8))
    contours, _ = cv2.findContours(bitmap, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    boxes: list[Box] = []
    height, width = shape
    for contour in contours[: params.max_candidates]:
        x, y, rw, rh = (int(v) for v in cv2.boundingRect(contour))
        rect = (x, y, rw, rh)
        if min(rw, rh) < params.min_size:
            continue
        if _box_score(prob, contour, rect) < params.box_thresh:
            continue
        boxes.append(_unclip(rect, scale_y, scale_x, width, height, params.unclip_ratio))
    return merge_line_boxes(sorted(b for b in boxes if b.width > 3 and b.height > 3))


def _same_line(a: Box, b: Box) -> bool:
    overlap = min(a.y1, b.y1) - max(a.y0, b.y0)
    low = min(a.height, b.height)
    gap = max(a.x0, b.x0) - min(a.x1, b.x1)
    return overlap >= 0.6 * low and gap <= 0.6 * low


def merge_line_boxes(boxes: list[Box]) -> list[Box]:
    """Join boxes that touch on the same text line (the detector sometimes splits a string)."""
    out: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.x0):
        for i, other in enumerate(out):
            if _same_line(other, box):
                out[i] = other.union(box)
                break
        else:
            out.append(box)
    return sorted(out)


def _unclip(
    rect: tuple[int, int, int, int],
    scale_y: float,
    scale_x: float,
    width: int,
    height: int,
    ratio: float,
) -> Box:
    x, y, w, h = rect
    dist = w * h * ratio / (2.0 * (w + h))
    x0, y0, x1, y1 = x - dist, y - dist, x + w + dist, y + h + dist
    return Box(
        max(0, math.floor(x0 / scale_x)),
        max(0, math.floor(y0 / scale_y)),
        min(width, math.ceil(x1 / scale_x)),
        min(height, math.ceil(y1 / scale_y)),
    )
