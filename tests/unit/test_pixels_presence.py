"""The text-presence pass: text frames vs plain anatomy, structural cues, corner outliers."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from dxai.actors.pixels import presence
from dxai.actors.pixels.types import Box, UInt8Array
from dxai.synth import pixels
from dxai.synth.fonts import load_font
from dxai.synth.series import ct_series


def _ct_display(seed: int, size: int = 512) -> UInt8Array:
    """A CT-like body slice (noisy phantom, HU) in the abdominal window, 8-bit grey."""
    phantom = pixels.ct_phantom(np.random.default_rng(seed), size)
    hu = phantom.frames[0].astype(np.float32) - 1024.0
    return np.clip((hu - 40.0 + 200.0) / 400.0 * 255.0, 0, 255).round().astype(np.uint8)


def _write(image: UInt8Array, text: str, xy: tuple[int, int], size: int, fill: int) -> UInt8Array:
    canvas = Image.fromarray(image)
    ImageDraw.Draw(canvas).text(xy, text, font=load_font(0, size), fill=fill)
    return np.asarray(canvas, dtype=np.uint8).copy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noisy_ct_phantom_without_text_is_not_likely(seed: int) -> None:
    frame = _ct_display(seed)
    assert presence.text_lines(frame) == []
    assert not presence.text_likely(frame)


@pytest.mark.parametrize(
    ("text", "xy", "size"),
    [
        ("DOE^JOHN 1961-08-23", (6, 6), 11),
        ("MRN 12345678", (300, 470), 14),
        ("ID 4711", (200, 240), 12),
    ],
)
def test_small_bright_text_on_the_ct_phantom_is_likely(
    text: str, xy: tuple[int, int], size: int
) -> None:
    frame = _write(_ct_display(0), text, xy, size, 255)
    lines = presence.text_lines(frame)
    assert lines and any(b.x0 <= xy[0] + 4 and b.y0 <= xy[1] + size for b in lines)
    assert presence.text_likely(frame)


def test_dark_text_on_a_light_box_is_likely() -> None:
    frame = _ct_display(3)
    frame[20:44, 300:480] = 230
    assert presence.text_likely(_write(frame, "SMITH, ANNA", (306, 24), 14, 10))


def test_plain_anatomy_like_frames_are_not_likely() -> None:
    rng = np.random.default_rng(7)
    mr = pixels.mr_phantom(rng, 256).frames[0].astype(np.float32)
    dx = pixels.dx_phantom(rng, 512, mono1=False).frames[0].astype(np.float32)
    for frame, (lo, hi) in ((mr, (0.0, 3000.0)), (dx, (0.0, 4095.0))):
        grey = np.clip((frame - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
        assert not presence.text_likely(grey)


def test_real_ct_without_text_probes_clean() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    probe = presence.probe_dataset(pydicom.dcmread(path))
    assert probe.reason is None and not probe.likely
    assert probe.corners.shape == (1, 4, 3)


class _Detector:
    """A detector that answers with fixed boxes and records the crops it was shown."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes
        self.shapes: list[tuple[int, ...]] = []

    def detect(self, image: UInt8Array) -> list[Box]:
        self.shapes.append(image.shape)
        return self.boxes


def test_candidates_are_confirmed_by_the_detector_on_crops() -> None:
    frame = _write(_ct_display(0), "DOE^JOHN 1961-08-23", (6, 6), 11, 255)
    assert not presence.text_likely(frame, detector=_Detector([]))
    blob = _Detector([Box(0, 0, 10, 10)])  # square: not a text line
    assert not presence.text_likely(frame, detector=blob)
    found = _Detector([Box(2, 2, 60, 14)])
    assert presence.text_likely(frame, detector=found)
    assert found.shapes and all(s[0] < 200 and s[2] == 3 for s in found.shapes)  # RGB crops


def test_a_clean_frame_never_reaches_the_detector() -> None:
    detector = _Detector([Box(0, 0, 100, 10)])
    assert not presence.text_likely(_ct_display(1), detector=detector)
    assert detector.shapes == []


def _header(**values: object) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    for key, value in values.items():
        setattr(ds, key, value)
    return ds


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ({}, None),
        ({"SeriesDescription": "ABDOMEN 5mm", "ProtocolName": "ROUTINE"}, None),
        ({"BurnedInAnnotation": "YES"}, "burned_in_annotation"),
        ({"BurnedInAnnotation": "NO"}, None),
        ({"ImageType": ["DERIVED", "PRIMARY", "MPR"]}, "derived_image"),
        ({"ImageType": ["ORIGINAL", "SECONDARY"]}, "derived_image"),
        ({"ImageType": ["ORIGINAL", "PRIMARY", "LOCALIZER"]}, "localizer"),
        ({"ImageType": "ORIGINAL\\PRIMARY\\LOCALIZER"}, "localizer"),
        ({"SeriesDescription": "Scout 0.6"}, "localizer"),
        ({"ProtocolName": "Topogram AP"}, "localizer"),
        ({"SeriesDescription": "SURVIEW"}, "localizer"),
        ({"SeriesDescription": "Dose Report"}, "dose_screen"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7"}, "secondary_capture"),
        ({"SOPClassUID": "1.2.840.10008.5.1.4.1.1.7.4"}, "secondary_capture"),
    ],
)
def test_structural_cues(values: dict[str, object], reason: str | None) -> None:
    assert presence.structural_risk(_header(**values)) == reason


def test_structural_cue_decides_without_looking_at_the_pixels() -> None:
    ds = ct_series(5, 0, 1, size=128)[0].dataset
    ds.BurnedInAnnotation = "YES"
    probe = presence.probe_dataset(ds)
    assert probe.reason == "burned_in_annotation" and probe.corners.shape == (1, 4, 3)


def test_undecodable_pixels_need_full_processing() -> None:
    ds = ct_series(5, 0, 1, size=128)[0].dataset
    ds.PixelData = b"\0" * 10
    assert presence.probe_dataset(ds).reason == "undecodable"


def test_corners_unlike_the_series_are_outliers() -> None:
    frames = [_ct_display(seed) for seed in range(12)]
    frames[7] = _write(frames[7], "X", (8, 8), 30, 255)  # one big glyph in a corner only
    stats = [presence.corner_stats(f)[np.newaxis] for f in frames]
    assert presence.corner_outliers(stats) == [i == 7 for i in range(12)]


def test_corners_need_a_series_to_compare_with() -> None:
    frames = [_ct_display(0), _write(_ct_display(1), "X", (8, 8), 30, 255)]
    stats = [presence.corner_stats(f)[np.newaxis] for f in frames]
    assert presence.corner_outliers(stats) == [False, False]
    assert presence.corner_outliers([]) == []


def test_a_middle_slice_with_text_is_the_only_one_flagged() -> None:
    series = ct_series(11, 0, 12, size=256, text_on={6})
    probes = [presence.probe_dataset(item.dataset) for item in series]
    odd = presence.corner_outliers([p.corners for p in probes])
    assert [p.likely or o for p, o in zip(probes, odd, strict=True)] == [i == 6 for i in range(12)]
