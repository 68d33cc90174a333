"""Redactor orchestration with fake OCR: fill, header marks, verify hold, codec round trips."""

from __future__ import annotations

import numpy as np
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.codec import decode, encode
from dxai.actors.pixels.ocr import Line
from dxai.actors.pixels.redactor import CLEAN_PIXEL_CODE, PixelRedactor, could_hide_text
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.schema.pixels import PixelPolicyConfig


def _dataset(ts: str = uid.ExplicitVRLittleEndian, frames: int = 1) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.SecondaryCaptureImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName = "OT", "DOE^JOHN"
    arr = np.full((frames, 64, 96), 100, dtype=np.uint16)
    arr[:, 10:20, 10:60] = 4000
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 96, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 16, 12
    ds.HighBit, ds.PixelRepresentation = 11, 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = (arr if frames > 1 else arr[0]).tobytes()
    if ts != uid.ExplicitVRLittleEndian:
        ds.compress(ts, generate_instance_uid=False)
    return ds


class FakeDetector:
    """Finds text wherever the frame is bright."""

    def detect(self, image: UInt8Array) -> list[Box]:
        ys, xs = np.nonzero(image[..., 0] > 200)
        return (
            [Box(int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)]
            if len(xs)
            else []
        )


class FakeRecognizer:
    """Reads a fixed string from every crop."""

    def __init__(self, text: str) -> None:
        self.text = text

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition(self.text, 0.99) for _ in crops]


def test_fills_phi_and_marks_header() -> None:
    ds = _dataset()
    redactor = PixelRedactor(PixelPolicyConfig(), FakeDetector(), FakeRecognizer("DOE JOHN"))
    report = redactor.redact_dataset(ds, ["DOE^JOHN"], "always")
    assert report.status == "redacted" and report.boxes_redacted == 1
    assert int(np.asarray(ds.pixel_array)[10:20, 10:60].max()) == 100
    assert ds.BurnedInAnnotation == "NO"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == [CLEAN_PIXEL_CODE[0]]


def test_benign_text_left_alone() -> None:
    ds = _dataset()
    before = bytes(ds.PixelData)
    report = PixelRedactor(
        PixelPolicyConfig(), FakeDetector(), FakeRecognizer("kVp 120")
    ).redact_dataset(ds, ["DOE^JOHN"], "always")
    assert report.status == "clean" and bytes(ds.PixelData) == before


def test_low_confidence_text_holds_instance() -> None:
    class Unsure(FakeRecognizer):
        def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
            return [Recognition("x?", 0.1) for _ in crops]

    match_phi = PixelPolicyConfig(mode_modalities={}, mode_sop_classes={})  # OT: not filled
    report = PixelRedactor(match_phi, FakeDetector(), Unsure("")).redact_dataset(
        _dataset(), ["DOE^JOHN"], "always"
    )
    assert report.status == "held" and "low_confidence" in report.held_reasons


@pytest.mark.parametrize(
    ("text", "box", "counts"),
    [
        ("x?", Box(10, 10, 60, 20), True),  # line-shaped: may be a badly read name
        ("DOE", Box(10, 10, 30, 30), True),  # three characters read
        ("4", Box(20, 60, 226, 357), False),  # a blob on anatomy read as one glyph
        ("Se", Box(78, 776, 155, 842), False),  # two glyphs in a square box
        ("OTN", Box(57, 193, 398, 337), False),  # taller than any annotation line here
        ("", Box(10, 10, 90, 20), False),  # nothing read at all
    ],
)
def test_low_confidence_counts_only_for_text_like_regions(
    text: str, box: Box, counts: bool
) -> None:
    assert could_hide_text(Line(box, Recognition(text, 0.2)), max_height=64) is counts


def test_low_confidence_blob_does_not_hold() -> None:
    class Blob(FakeRecognizer):
        def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
            return [Recognition("4", 0.2) for _ in crops]

    ds = _dataset()
    arr = np.full((64, 96), 100, dtype=np.uint16)
    arr[5:60, 30:70] = 4000  # a bright square, not a text line
    ds.PixelData = arr.tobytes()
    report = PixelRedactor(PixelPolicyConfig(), FakeDetector(), Blob("")).redact_dataset(
        ds, ["DOE^JOHN"], "always"
    )
    assert report.status == "clean" and not report.held_reasons


def test_skip_policy_and_multiframe_union() -> None:
    policy = PixelPolicyConfig(scan_modalities={"OT": "skip"}, scan_sop_classes={})
    redactor = PixelRedactor(policy, FakeDetector(), FakeRecognizer("DOE JOHN"))
    assert redactor.redact_dataset(_dataset(), ["DOE^JOHN"], "auto").status == "skipped"
    ds = _dataset(frames=3)
    report = redactor.redact_dataset(ds, ["DOE^JOHN"], "always")
    assert report.status == "redacted" and report.frames == 3 and report.frames_ocr == 1
    assert int(np.asarray(ds.pixel_array)[:, 10:20, 10:60].max()) == 100


@pytest.mark.parametrize("ts", [uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless])
def test_lossless_round_trip_keeps_syntax(ts: str) -> None:
    ds = _dataset(ts)
    decoded = decode(ds)
    decoded.frames[:, 0:5, 0:5] = 0
    assert encode(ds, decoded) == ts
    assert ds.file_meta.TransferSyntaxUID == ts
    assert int(np.asarray(ds.pixel_array)[0:5, 0:5].max()) == 0
    assert "LossyImageCompression" not in ds


def test_a_j2k_stream_signed_unlike_its_header_decodes_and_round_trips() -> None:
    """pydicom's in-place decompress fails on a JPEG 2000 stream whose signedness differs from
    Pixel Representation (a real scanner's file, shipped with pydicom): the frames are decoded
    as ``pixel_array`` decodes them, and written back in the same lossless syntax."""
    import pydicom
    from pydicom.data import get_testdata_file

    path = get_testdata_file("J2K_pixelrep_mismatch.dcm")
    assert isinstance(path, str)
    expected = pydicom.dcmread(path).pixel_array
    ds = pydicom.dcmread(path)
    decoded = decode(ds)
    assert decoded.frames.shape == (1, *expected.shape)
    assert np.array_equal(decoded.frames[0], expected)
    assert encode(ds, decoded) == uid.JPEG2000Lossless
    assert np.array_equal(pydicom.dcmread(_saved(ds)).pixel_array, expected)


def _saved(ds: Dataset) -> object:
    from io import BytesIO

    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return buf


def test_lossy_input_written_native_and_marked() -> None:
    ds = _dataset()
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = np.full((64, 96), 50, dtype=np.uint8).tobytes()
    ds.compress(uid.JPEGLSNearLossless, jls_error=2, generate_instance_uid=False)
    decoded = decode(ds)
    assert decoded.lossy_source
    assert encode(ds, decoded) == uid.ExplicitVRLittleEndian
    assert ds.LossyImageCompression == "01"
    assert "ISO_14495_1" in str(ds.LossyImageCompressionMethod)


def test_policy_resolution() -> None:
    policy = PixelPolicyConfig(mode_modalities={"SC": "redact_all_text"})
    assert policy.scan_action("US", "") == "always"
    assert policy.scan_action("CT", "") == "presence"
    assert policy.scan_action("CT", uid.SecondaryCaptureImageStorage) == "always"
    assert policy.text_mode("SC", "") == "redact_all_text"
    with pytest.raises(ValueError, match="upper-case"):
        PixelPolicyConfig(scan_modalities={"us": "always"})


def test_ocr_threads_bounds() -> None:
    assert PixelPolicyConfig().ocr_threads == 1
    assert PixelPolicyConfig(ocr_threads=2).ocr_threads == 2
    with pytest.raises(ValueError, match="greater than or equal"):
        PixelPolicyConfig(ocr_threads=0)
