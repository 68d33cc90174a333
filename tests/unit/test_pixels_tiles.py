"""Detection tiles for large images (geometry, coordinates, lines across a tile edge)."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from dxai.actors.pixels.det import DetParams, det_scale, detect_boxes
from dxai.actors.pixels.tiles import TILE_OVERLAP_PX, detect_tiled, detection_tiles
from dxai.actors.pixels.types import Box

pytestmark = pytest.mark.unit


def test_small_and_medium_images_are_read_whole() -> None:
    params = DetParams()
    assert detection_tiles(512, 512, params) == []
    assert detection_tiles(1200, 1000, params) == []  # at most 1.25 x max_side
    assert detection_tiles(3000, 2400, DetParams(tile_max_side=960)) == []  # turned off


@pytest.mark.parametrize("shape", [(3000, 2400), (4000, 3300), (1300, 1300), (2048, 2500)])
def test_tiles_cover_the_image_and_fit_the_detector(shape: tuple[int, int]) -> None:
    params = DetParams()
    height, width = shape
    tiles = detection_tiles(height, width, params)
    assert tiles
    scale = min(1.0, params.tile_max_side / max(shape))
    covered = np.zeros(shape, dtype=bool)
    for tile in tiles:
        assert 0 <= tile.x0 < tile.x1 <= width and 0 <= tile.y0 < tile.y1 <= height
        # each tile is read at the tile scale: its long side fits max_side there
        assert max(tile.width, tile.height) * scale <= params.max_side + 1
        covered[tile.y0 : tile.y1, tile.x0 : tile.x1] = True
    assert covered.all()
    xs = sorted({(t.x0, t.x1) for t in tiles})
    for (_, end), (start, _) in pairwise(xs):
        assert end - start >= TILE_OVERLAP_PX / scale - 1  # neighbours overlap


def test_tiled_boxes_come_back_in_image_pixels_and_pieces_merge() -> None:
    """A line across the edge between two tiles, found in two pieces, is one box."""
    image = np.zeros((3000, 2400, 3), dtype=np.uint8)
    tiles = detection_tiles(3000, 2400, DetParams())
    left, right = tiles[0], tiles[1]
    assert left.y0 == right.y0 == 0 and right.x0 < left.x1
    line_y, edge = 100, left.x1

    def detect(crops: list[np.ndarray]) -> list[list[Box]]:
        out: list[list[Box]] = []
        for tile, crop in zip(tiles, crops, strict=True):
            assert crop.shape[:2] == (tile.height, tile.width)
            found = []
            if tile is left:  # the piece it sees up to its edge
                found.append(Box(edge - 200 - tile.x0, line_y, edge - tile.x0, line_y + 20))
            if tile is right:  # the rest, from inside the overlap
                found.append(Box(edge - 50 - tile.x0, line_y, edge + 300 - tile.x0, line_y + 20))
            out.append(found)
        return out

    (boxes,) = detect_tiled([image], DetParams(), detect)
    assert boxes == [Box(edge - 200, line_y, edge + 300, line_y + 20)]


def test_small_images_go_to_the_detector_whole_with_the_large_ones_tiles() -> None:
    small, large = np.zeros((400, 500, 3), np.uint8), np.zeros((3000, 2400, 3), np.uint8)
    seen: list[tuple[int, int]] = []

    def detect(crops: list[np.ndarray]) -> list[list[Box]]:
        seen.extend(c.shape[:2] for c in crops)
        return [[Box(1, 1, 30, 10)] for _ in crops]

    boxes = detect_tiled([small, large], DetParams(), detect)
    tiles = detection_tiles(3000, 2400, DetParams())
    assert seen[0] == (400, 500) and len(seen) == 1 + len(tiles)
    assert boxes[0] == [Box(1, 1, 30, 10)]
    assert len(boxes[1]) == len(tiles)  # one box per tile, shifted to the tile's place
    assert sorted(boxes[1]) == sorted(Box(t.x0 + 1, t.y0 + 1, t.x0 + 30, t.y0 + 10) for t in tiles)


@pytest.mark.parametrize(
    ("shape", "expected"),
    [((512, 512), (512, 512)), ((394, 552), (512, 717)), ((3000, 2400), (960, 768))],
)
def test_detector_scale_of_ordinary_images(shape: tuple[int, int], expected: tuple[int, int]):
    scale = det_scale(*shape, DetParams())
    assert (round(shape[0] * scale), round(shape[1] * scale)) == expected


@pytest.mark.parametrize("shape", [(64, 16384), (8, 65535), (1, 30000)])
def test_a_strip_is_not_upscaled_past_the_detector_pixel_bound(shape: tuple[int, int]) -> None:
    """A 64 x 16384 strip upscaled to a 512-pixel short side asked the detector for 256 x 65536
    (2.2 GB RSS, 9 s for one instance); the input stays within ``max_pixels``."""
    params = DetParams()
    seen: list[tuple[int, ...]] = []

    def run(chw: np.ndarray) -> np.ndarray:
        seen.append(chw.shape)
        return np.zeros(chw.shape[1:], dtype=np.float32)

    image = np.zeros((*shape, 3), dtype=np.uint8)
    assert detect_boxes(image, params, run) == []
    ((_, height, width),) = seen
    # each side is rounded to a multiple of 32 (at least 32): a few rows more on a thin strip
    assert height * width <= params.max_pixels * 1.25


def test_an_image_read_whole_keeps_the_detectors_boxes_as_given() -> None:
    """Only tiled images are merged again: a whole image's boxes are the detector's own."""
    small = np.zeros((400, 500, 3), np.uint8)
    given = [Box(10, 10, 60, 30), Box(62, 10, 120, 30)]  # touching pieces the detector kept

    def detect(crops: list[np.ndarray]) -> list[list[Box]]:
        return [list(given) for _ in crops]

    assert detect_tiled([small], DetParams(), detect) == [given]
