"""The independent verify's rules, with a fake second reader (the real one: integration)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom import uid
from pydicom.dataset import Dataset, FileMetaDataset

from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.second_reader import REASON, ReadLine, tessdata_dir
from dxai.actors.pixels.types import Box, Recognition, UInt8Array
from dxai.configs.errors import ConfigError
from dxai.configs.schema.pixels import PixelPolicyConfig

pytestmark = pytest.mark.unit


def _dataset() -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = uid.ExplicitVRLittleEndian
    ds.SOPClassUID, ds.SOPInstanceUID = uid.CTImageStorage, uid.generate_uid()
    ds.Modality, ds.PatientName = "CT", "DOE^JOHN"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 64, 96, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 8, 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    ds.PixelData = np.full((64, 96), 40, dtype=np.uint8).tobytes()
    return ds


class NoText:
    """PP-OCR's part: it finds nothing (the text it misses)."""

    def detect(self, image: UInt8Array) -> list[Box]:
        return []

    def recognize(self, crops: list[UInt8Array]) -> list[Recognition]:
        return [Recognition("", 0.0) for _ in crops]


class Reads:
    """A second reader that reads fixed lines, counting the images it was given."""

    name = "fake"

    def __init__(self, *lines: ReadLine) -> None:
        self.lines, self.images = list(lines), 0

    def read(self, image: UInt8Array) -> list[ReadLine]:
        self.images += 1
        return self.lines


def _run(second: Reads, policy: PixelPolicyConfig | None = None) -> tuple[str, list[str], int]:
    finder = NoText()
    redactor = PixelRedactor(policy or PixelPolicyConfig(), finder, finder, second_reader=second)
    report = redactor.redact_dataset(_dataset(), ["DOE^JOHN"])
    assert report.second_reader == "fake"
    return report.status, report.held_reasons, len(report.held_boxes)


def test_phi_the_second_reader_reads_holds_with_its_own_reason_and_box() -> None:
    second = Reads(ReadLine(Box(5, 5, 60, 15), "DOE JOHN", 0.9))
    assert _run(second) == ("held", [REASON], 1)
    assert second.images == 1


def test_dates_and_labels_it_reads_hold_too() -> None:
    for text in ("DOB: 07.22.1943", "1999 Sep 23", "Patient ID: 3209648408"):
        assert _run(Reads(ReadLine(Box(5, 5, 60, 15), text, 0.9)))[0] == "held", text


def test_benign_text_and_unsure_reads_do_not_hold() -> None:
    benign = Reads(
        ReadLine(Box(5, 5, 60, 15), "AXIAL 5 mm", 0.95),
        ReadLine(Box(5, 20, 60, 30), "Gen OB", 0.95),
        ReadLine(Box(5, 35, 60, 45), "DOE JOHN", 0.3),  # below the floor: noise on anatomy
    )
    assert _run(benign) == ("clean", [], 0)


def test_the_floor_is_the_policys() -> None:
    unsure = Reads(ReadLine(Box(5, 35, 60, 45), "DOE JOHN", 0.3))
    policy = PixelPolicyConfig(second_reader_min_confidence=0.2)
    assert _run(unsure, policy)[0] == "held"


def test_no_second_reader_when_the_policy_says_none_or_verify_is_off() -> None:
    finder = NoText()
    for policy in (PixelPolicyConfig(second_reader="none"), PixelPolicyConfig(verify=False)):
        redactor = PixelRedactor(policy, finder, finder)
        assert redactor.second_reader is None
        assert redactor.redact_dataset(_dataset(), ["DOE^JOHN"]).second_reader == ""


def test_missing_language_data_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"deid\.pixel_policy\.second_reader"):
        tessdata_dir(str(tmp_path))
    finder = NoText()
    policy = PixelPolicyConfig(tessdata_dir=str(tmp_path))
    with pytest.raises(ConfigError):
        PixelRedactor(policy, finder, finder)
