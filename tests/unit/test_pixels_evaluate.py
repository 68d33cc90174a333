"""Scoring of redactions against ground truth: glyph masks judge any box shape alike."""

from __future__ import annotations

import numpy as np

from dxai.actors.pixels.evaluate import GroundTruthBox, score_frames, text_removed
from dxai.synth.manifest import BurnedInText, pack_ink

TEXT, BACKGROUND = 200, 10


def _frame_with_text() -> tuple[np.ndarray, np.ndarray]:
    """A 1 x 20 x 40 noisy frame with two 'glyphs' inside the box (5, 5, 35, 15)."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 30, size=(1, 20, 40)).astype(np.uint16)
    ink = np.zeros((10, 30), dtype=bool)
    ink[2:8, 2:12] = True  # first word
    ink[2:8, 18:28] = True  # second word
    frames[0, 5:15, 5:35][ink] = TEXT
    return frames, ink


def _truth(ink: np.ndarray | None) -> list[GroundTruthBox]:
    return [GroundTruthBox((0,), (5, 5, 35, 15), True, ink)]


def test_tight_word_boxes_count_as_found_with_ink() -> None:
    frames, ink = _frame_with_text()
    after = frames.copy()
    after[0, 7:13, 7:17] = BACKGROUND  # word boxes only: background noise around stays
    after[0, 7:13, 23:33] = BACKGROUND
    assert score_frames(frames, after, _truth(ink)).phi_found == 1
    assert score_frames(frames, after, _truth(None)).phi_found == 0  # uniform rule is stricter


def test_half_covered_text_is_missed() -> None:
    frames, ink = _frame_with_text()
    after = frames.copy()
    after[0, 5:15, 5:18] = BACKGROUND  # the first word only
    assert score_frames(frames, after, _truth(ink)).phi_found == 0


def test_fill_in_the_text_colour_hides_it_only_inside_the_fill() -> None:
    frames, ink = _frame_with_text()
    whole = frames.copy()
    whole[0, 5:15, 5:35] = TEXT  # a white box over white text: gone
    assert score_frames(frames, whole, _truth(ink)).phi_found == 1
    part = frames.copy()
    part[0, 5:15, 5:18] = TEXT  # white box over the first word; the second stays legible
    assert score_frames(frames, part, _truth(ink)).phi_found == 0


def test_unchanged_region_is_never_removed() -> None:
    frames, ink = _frame_with_text()
    region = frames[0, 5:15, 5:35].reshape(-1, 1)
    assert not text_removed(region, region.copy(), ink)


def test_benign_box_without_mask_kept_only_when_unchanged() -> None:
    frames, _ = _frame_with_text()
    truth = [GroundTruthBox((0,), (5, 5, 35, 15), False)]
    assert score_frames(frames, frames.copy(), truth).benign_kept == 1
    after = frames.copy()
    after[0, 6, 6] += 1
    score = score_frames(frames, after, truth)
    assert score.benign_kept == 0 and score.benign_untouched == 0


def test_benign_marker_grazed_by_a_fill_stays_legible() -> None:
    frames, ink = _frame_with_text()
    truth = [GroundTruthBox((0,), (5, 5, 35, 15), False, ink)]
    grazed = frames.copy()
    grazed[0, 5:8, 5:15] = BACKGROUND  # a neighbour's fill grazes the top of the first word
    score = score_frames(frames, grazed, truth)
    assert score.benign_kept == 1 and score.benign_untouched == 0
    halved = frames.copy()
    halved[0, 5:15, 5:18] = BACKGROUND  # one word of the marker gone
    assert score_frames(frames, halved, truth).benign_kept == 0


def test_ink_round_trips_through_the_manifest_record() -> None:
    _, ink = _frame_with_text()
    record = BurnedInText(
        frames=[0], box=[5, 5, 35, 15], text="x", phi=True, kind="name", ink=pack_ink(ink)
    )
    mask = record.ink_mask()
    assert mask is not None and np.array_equal(mask, ink)
    legacy = BurnedInText(frames=[0], box=[5, 5, 35, 15], text="x", phi=True, kind="name")
    assert legacy.ink_mask() is None
