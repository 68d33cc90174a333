"""Detection tiles: small print on large images, which the whole-image pass cannot see.

The detector reads an image scaled so that its long side is at most ``DetParams.max_side``
(960): on a 3000 x 2400 radiograph that is a third of its size, and an 18-pixel annotation
line is 6 pixels tall there, too small for the detector (measured: released legible).  An image
whose long side is over ``TILE_FROM`` times ``max_side`` is therefore read at up to
``tile_max_side`` (1920) on its long side instead, in overlapping tiles the detector takes
whole (pieces of one line across a tile edge merge into one box).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from dxai.actors.pixels.det import DetParams, merge_line_boxes
from dxai.actors.pixels.types import Box, UInt8Array

TILE_FROM = 1.25
# tiles overlap by this many detector pixels: a line cut by one tile's edge lies whole in the next
TILE_OVERLAP_PX = 96


def detection_tiles(height: int, width: int, params: DetParams) -> list[Box]:
    """Tiles (image pixel boxes) for the second detection pass; none for smaller images."""
    long = max(height, width)
    if params.tile_max_side <= params.max_side or long <= TILE_FROM * params.max_side:
        return []
    scale = min(1.0, params.tile_max_side / long)
    size = math.floor(params.max_side / scale)  # read at ``scale``: max_side detector pixels
    overlap = math.ceil(TILE_OVERLAP_PX / scale)
    rows, cols = _spans(height, size, overlap), _spans(width, size, overlap)
    return [Box(x0, y0, x1, y1) for y0, y1 in rows for x0, x1 in cols]


def _spans(length: int, size: int, overlap: int) -> list[tuple[int, int]]:
    """Evenly spread ``size``-long spans covering ``length``, neighbours overlapping."""
    if length <= size:
        return [(0, length)]
    count = math.ceil((length - overlap) / (size - overlap))
    stride = (length - size) / (count - 1)
    return [(round(i * stride), round(i * stride) + size) for i in range(count)]


def detect_tiled(
    images: Sequence[UInt8Array],
    params: DetParams,
    detect: Callable[[list[UInt8Array]], list[list[Box]]],
) -> list[list[Box]]:
    """Boxes of every image: a large one read in its tiles instead of whole, the others whole.

    ``detect`` reads a list of crops (every image's, at once, so they can be batched).  A line
    cut by a tile edge is found whole in the overlapping neighbour, or in two pieces that
    :func:`merge_line_boxes` joins.  (Read whole as well, a large image gave boxes spanning two
    lines of small print, read as noise: they swallowed the tiles' line boxes when joined.)
    """
    owners: list[tuple[int, Box | None]] = []
    crops: list[UInt8Array] = []
    for index, image in enumerate(images):
        tiles: list[Box | None] = list(detection_tiles(image.shape[0], image.shape[1], params))
        for tile in tiles or [None]:
            owners.append((index, tile))
            crops.append(image if tile is None else image[tile.y0 : tile.y1, tile.x0 : tile.x1])
    joined: list[list[Box]] = [[] for _ in images]
    tiled: set[int] = set()
    for (index, tile), found in zip(owners, detect(crops), strict=True):
        if tile is None:
            joined[index] = list(found)  # as the detector merged them
            continue
        tiled.add(index)
        joined[index] += [_shifted(box, tile) for box in found]
    return [merge_line_boxes(found) if i in tiled else found for i, found in enumerate(joined)]


def _shifted(box: Box, tile: Box) -> Box:
    return Box(box.x0 + tile.x0, box.y0 + tile.y0, box.x1 + tile.x0, box.y1 + tile.y0)
