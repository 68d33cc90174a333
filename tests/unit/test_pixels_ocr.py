"""Line grouping and PHI box decisions on recognised fragments; the CPU OCR models."""

from __future__ import annotations

import cv2
import numpy as np

from dxai.actors.pixels.ocr import (
    EngineTextDetector,
    EngineTextRecognizer,
    Line,
    decide,
    group_lines,
    rec_charset,
)
from dxai.actors.pixels.phi import build_terms, term_hits
from dxai.actors.pixels.rec import width_groups
from dxai.actors.pixels.types import Box, Recognition
from dxai.engines import load_registry

TERMS = build_terms(["DOE^JOHN", "19960717", "MRN9388823", "A12092516", "1 Grace Plaza, Seattle"])


def _line(x0: int, x1: int, text: str, conf: float = 0.95, y0: int = 10, y1: int = 22) -> Line:
    steps = len(text)
    spans = tuple((i / steps, (i + 1) / steps) for i in range(steps))
    return Line(Box(x0, y0, x1, y1), Recognition(text, conf, spans))


def _covers(boxes: list[Box], x0: int, x1: int) -> bool:
    return all(any(b.x0 <= x < b.x1 for b in boxes) for x in range(x0, x1))


def test_fragments_on_one_line_are_grouped_left_to_right() -> None:
    lines = [_line(70, 120, "60717"), _line(2, 56, "DOB:1"), _line(2, 50, "kVp", y0=60, y1=72)]
    groups = group_lines(lines)
    assert [g.text for g in groups] == ["DOB:1 60717", "kVp"]


def test_split_date_and_its_label_are_filled_across_the_gap() -> None:
    lines = [_line(2, 56, "DOB:1"), _line(70, 113, "60717")]
    boxes = [p.box for p in decide(lines, TERMS, False, ())]
    assert _covers(boxes, 2, 113)


def test_truncated_identifier_is_extended_over_the_lost_characters() -> None:
    found = decide([_line(2, 51, "MRN938")], TERMS, False, (), width=128)
    assert max(p.box.x1 for p in found) >= 51 + 4 * 8  # four characters the detector lost


def test_label_glued_to_a_value_is_filled_and_neighbour_marker_kept() -> None:
    found = decide([_line(0, 160, "MRN9388823AcC:A12092516")], TERMS, False, ())
    assert _covers([p.box for p in found], 0, 160)
    kept = decide([_line(0, 100, "JohnDoe5cm")], TERMS, False, ())
    assert max(p.box.x1 for p in kept) < 100


def test_ocr_confusions_in_names_still_match() -> None:
    for text in ("D0E, J0HN", "DOE~OHN"):
        found = decide([_line(0, 90, text)], TERMS, False, ())
        assert _covers([p.box for p in found], 0, 90), text


def test_unreadable_fragment_next_to_phi_is_filled() -> None:
    lines = [_line(23, 45, "1", conf=0.2, y0=47, y1=53), _line(51, 125, "A12092516", y0=44, y1=56)]
    assert _covers([p.box for p in decide(lines, TERMS, False, ())], 23, 125)


def test_fragment_hits_need_digits_and_length() -> None:
    assert term_hits("SEATTLE", TERMS) == []  # a word of an address is no identifier fragment
    assert term_hits("9388", TERMS) == []
    hits = term_hits("20824", build_terms(["20220824"]))
    assert any((hit.missing_left, hit.missing_right) == (3, 0) for hit in hits)


def test_width_groups_batch_similar_widths() -> None:
    assert width_groups([100, 20, 130, 25, 300], max_batch=2) == [[1, 3], [0, 2], [4]]
    assert width_groups([10, 100], max_batch=16) == [[0], [1]]  # too different to pad together
    assert width_groups([], max_batch=4) == []


def test_cpu_models_run_on_one_shared_engine_per_setting() -> None:
    first, again, other = EngineTextRecognizer(), EngineTextRecognizer(), EngineTextRecognizer(2)
    assert first._engine is again._engine and other._engine is not first._engine
    assert first._engine.info.backend == "onnxruntime" and first._engine.info.device == "cpu"
    sha256 = load_registry().get("ppocr_rec").sha256
    assert first.cache_identity == f"onnxruntime:ppocr_rec:{sha256}"
    assert first.charset == other.charset == rec_charset()
    assert len(first.charset) == 6625 and first.charset[0] == "" and first.charset[-1] == " "


def test_cpu_models_find_and_read_a_text_line() -> None:
    image = np.full((120, 420, 3), 255, np.uint8)
    cv2.putText(image, "SMITH 1996", (12, 70), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    boxes = EngineTextDetector().detect(image)
    assert len(boxes) == 1 and boxes[0].x0 <= 14 and boxes[0].y0 < 50 < 70 <= boxes[0].y1
    (read,) = EngineTextRecognizer().recognize([image[b.y0 : b.y1, b.x0 : b.x1] for b in boxes])
    assert read.text == "SMITH 1996" and read.confidence > 0.8
    assert len(read.char_spans) == len(read.text)
