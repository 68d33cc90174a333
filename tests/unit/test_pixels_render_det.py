"""Detector geometry (border padding), display levels, contrast, colour re-encoding."""

from __future__ import annotations

import numpy as np
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.codec import decode, encode
from dxai.actors.pixels.det import DetParams, detect_boxes
from dxai.actors.pixels.ocr import Line, read_images
from dxai.actors.pixels.render import DisplayInfo, enhance, to_display
from dxai.actors.pixels.types import Box, FloatArray, Recognition, UInt8Array


def test_detect_boxes_maps_back_through_the_border() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    params = DetParams(min_side=100, max_side=400, border=8)
    seen: list[tuple[int, ...]] = []

    def run(chw: FloatArray) -> FloatArray:
        seen.append(chw.shape)
        prob = np.zeros(chw.shape[1:], np.float32)
        h, w = prob.shape
        # text at image rows 2..12, columns 2..80 (plus the 8 px border), in input scale
        sy, sx = h / 116, w / 216
        prob[round(10 * sy) : round(20 * sy), round(10 * sx) : round(88 * sx)] = 0.9
        return prob

    [box] = detect_boxes(image, params, run)
    assert seen and seen[0][1] % 32 == 0 and seen[0][2] % 32 == 0
    assert box.x0 <= 2 and box.y0 <= 2 and 80 <= box.x1 <= 100 and 12 <= box.y1 <= 25


def test_enhance_raises_local_contrast() -> None:
    image = np.full((64, 64, 3), 200, np.uint8)
    image[20:30, 10:50] = 215  # faint bright text on a bright background
    out = enhance(image)
    assert out.shape == image.shape and out.dtype == np.uint8
    assert int(out[25, 30, 0]) - int(out[5, 5, 0]) > 15


class _CountingRecognizer:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        self.calls.append(len(crops))
        return [Recognition("X", 0.9) for _ in crops]


class _FixedDetector:
    def detect(self, image: UInt8Array) -> list[Box]:
        return [Box(0, 0, 20, 10), Box(0, 20, 20, 30)] if image[-1, -1, 0] else [Box(0, 0, 20, 10)]


def test_read_images_batches_and_skips_overlays_already_read() -> None:
    first = np.zeros((40, 40, 3), np.uint8)
    second = first.copy()
    second[30:40] = 1  # the frames differ, but not under the overlay at (0, 0, 20, 10)
    rec = _CountingRecognizer()
    lines = read_images([first, second], _FixedDetector(), rec)
    assert rec.calls == [2]  # one batch; the box at the same place on frame 2 is not re-read
    assert [[ln.box for ln in group] for group in lines] == [
        [Box(0, 0, 20, 10)],
        [Box(0, 20, 20, 30)],
    ]
    assert all(isinstance(ln, Line) for group in lines for ln in group)


def test_a_box_at_the_same_place_showing_other_pixels_is_read() -> None:
    """A frame counter on a projection, a name written where a marker stands on frame 1;
    a few levels of lossy-compression noise are not a change."""
    first, second = np.zeros((40, 40, 3), np.uint8), np.full((40, 40, 3), 255, np.uint8)
    rec = _CountingRecognizer()
    lines = read_images([first, second], _FixedDetector(), rec)
    assert rec.calls == [3]
    assert [ln.box for ln in lines[1]] == [Box(0, 0, 20, 10), Box(0, 20, 20, 30)]
    noisy = np.full((40, 40, 3), 30, np.uint8)
    rec = _CountingRecognizer()
    read_images([first, noisy], _FixedDetector(), rec)
    assert rec.calls == [2]


def _rgb_dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.SecondaryCaptureImageStorage, uid.generate_uid()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PlanarConfiguration = 32, 48, 3, 0
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "RGB", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    arr = np.random.default_rng(0).integers(0, 255, (32, 48, 3), dtype=np.uint8)
    ds.PixelData = arr.tobytes()
    return ds


def test_jpeg2000_lossless_rct_input_is_written_back_with_rct() -> None:
    ds = _rgb_dataset()
    ds.PhotometricInterpretation = "YBR_RCT"  # RGB pixels compressed with the RCT
    ds.compress(uid.JPEG2000Lossless, generate_instance_uid=False)
    assert ds.PhotometricInterpretation == "YBR_RCT"
    decoded = decode(ds)
    before = decoded.frames.copy()
    decoded.frames[:, :4, :4] = 0
    assert encode(ds, decoded) == uid.JPEG2000Lossless
    assert ds.PhotometricInterpretation == "YBR_RCT"
    after = decode(ds).frames
    assert np.array_equal(after[:, 4:, 4:], before[:, 4:, 4:]) and not after[:, :4, :4].any()


def test_an_8_bit_frame_without_window_keeps_its_brightest_text_apart_from_the_noise() -> None:
    # small print (0.2% of the pixels, level 255) on a flat speckled background: a 99.5th
    # percentile top lay in the noise, which was then stretched as bright as the text
    rng = np.random.default_rng(3)
    frame = np.clip(rng.normal(40, 6, (400, 500)), 0, 255).astype(np.uint8)
    frame[100:104, 100:200] = 255
    grey = to_display(frame, DisplayInfo("MONOCHROME2"))[..., 0]
    assert int(grey[100:104, 100:200].min()) == 255
    grey[100:104, 100:200] = 0
    assert int(grey.max()) < 160  # the noise stays well below the text
    deep = frame.astype(np.uint16) * 16  # 12-bit text at the top level: the same
    deep[100:104, 100:200] = 4095
    grey = to_display(deep, DisplayInfo("MONOCHROME2"))[..., 0]
    assert int(grey[100:104, 100:200].min()) == 255
    grey[100:104, 100:200] = 0
    assert int(grey.max()) < 160
    deep[100:104, 100:200] = 640  # a few hot pixels at the top: the percentile range
    deep[0, :3] = 65535
    assert float(np.median(to_display(deep, DisplayInfo("MONOCHROME2"))[..., 0])) > 64
