"""A poorly read box over several lines of small print is cut between its lines and read line by
line (``actors/pixels/stacked.py``); a well-read line, or a line with a descender band or a
sliver of the next line at its edge, is never cut."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from dxai.actors.pixels.stacked import line_cuts, split_stacked
from dxai.actors.pixels.types import Box, Recognition, UInt8Array

pytestmark = pytest.mark.unit

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"


def _print(lines: list[str], size: int = 12, step: int = 12, pad: int = 6) -> UInt8Array:
    """White print on a speckled dark crop, lines ``step`` pixels apart (glyphs nearly touch)."""
    font = ImageFont.truetype(FONT, size)
    height = 2 * pad + step * (len(lines) - 1) + size + 4
    rng = np.random.default_rng(0)
    image = Image.fromarray(np.clip(rng.normal(30, 6, (height, 240)), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for i, text in enumerate(lines):
        draw.text((4, pad + i * step), text, fill=255, font=font)
    return np.repeat(np.asarray(image)[..., None], 3, axis=2)


def test_three_tight_lines_are_cut_twice_between_them() -> None:
    crop = _print(["DOE, JOHN  ID: MRN123456", "DOB: 01/01/1970  Sex: M", "Acc: A7734521"])
    cuts = line_cuts(crop)
    assert len(cuts) == 2
    assert 6 + 8 <= cuts[0] <= 6 + 14 and 6 + 20 <= cuts[1] <= 6 + 26


@pytest.mark.parametrize("text", ["DOE, JOHN  ID: MRN123456", "Study Date: 2013 Sep 11", "ax mm"])
def test_one_line_is_not_cut(text: str) -> None:
    assert line_cuts(_print([text])) == []


def test_a_sliver_of_the_next_line_is_not_a_line() -> None:
    crop = _print(["Patient ID: 6774825273", "Name: KAUFMAN"], step=16)
    assert len(line_cuts(crop)) == 1
    rows = np.flatnonzero(crop[22:, :, 0].max(axis=1) > 200)  # where the second line starts
    assert line_cuts(crop[: 22 + int(rows[0]) + 3]) == []  # three rows of it


class _Rec:
    """Reads a crop as one line when it is under 30 px tall, else as noise."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        self.calls.append(len(crops))
        return [
            Recognition("LINE", 0.95) if c.shape[0] < 30 else Recognition("w", 0.3) for c in crops
        ]


def test_a_poorly_read_box_over_lines_is_replaced_by_its_lines() -> None:
    crop = _print(["DOE, JOHN  ID: MRN123456", "DOB: 01/01/1970  Sex: M", "Acc: A7734521"])
    image = np.zeros((200, 300, 3), np.uint8)
    h, w = crop.shape[:2]
    image[50 : 50 + h, 20 : 20 + w] = crop
    whole, kept = Box(20, 50, 20 + w, 50 + h), Box(20, 150, 120, 165)
    rec = _Rec()
    found = [[(kept, Recognition("Se 2", 0.6)), (whole, Recognition("w", 0.3))]]
    out = split_stacked([image], found, rec)[0]
    assert out[0] == found[0][0]  # no lines in it: left as read
    assert [r.text for _, r in out[1:]] == ["LINE"] * 3
    assert out[1][0].y0 == whole.y0 and out[-1][0].y1 == whole.y1
    assert all(a[0].y1 == b[0].y0 for a, b in pairwise(out[1:]))
    assert rec.calls == [3]  # the pieces of every box in one call


def test_a_well_read_box_or_less_confident_pieces_stay() -> None:
    crop = _print(["DOE, JOHN  ID: MRN123456", "DOB: 01/01/1970  Sex: M"])
    box = Box(0, 0, crop.shape[1], crop.shape[0])
    rec = _Rec()
    assert split_stacked([crop], [[(box, Recognition("DOE", 0.9))]], rec)[0][0][1].text == "DOE"
    assert rec.calls == []
    weak = Recognition("?", 0.99 - 0.5)
    rec.recognize = lambda crops: [Recognition("x", 0.2) for _ in crops]  # type: ignore[method-assign]
    assert split_stacked([crop], [[(box, weak)]], rec)[0] == [(box, weak)]
