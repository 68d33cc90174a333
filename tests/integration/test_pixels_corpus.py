"""Real OCR over the synthetic corpus and the shared reference files with burned-in text."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
from pathlib import Path

import pydicom
import pytest

from dxai.actors.pixels import PixelRedactor, phi_values
from dxai.actors.pixels.codec import decode
from dxai.actors.pixels.evaluate import GroundTruthBox, Score, score_frames, truth_boxes
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.synth.corpus import generate_corpus

# Issue targets on the synthetic corpus (real-size images): recall >= 0.99, benign kept >= 0.95.
RECALL_FLOOR = 0.99
BENIGN_KEPT_FLOOR = 0.95
# small=True (128-px images, 10-18 px fonts, some barely legible to a person) stays below the
# target: see the pixel PHI report; this floor guards against regressions there.
SMALL_RECALL_FLOOR = 0.97


@pytest.fixture(scope="module")
def redactor() -> PixelRedactor:
    return PixelRedactor()


def _roundtrip(ds: pydicom.Dataset) -> pydicom.Dataset:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return pydicom.dcmread(buf)


def _run_corpus(root: Path, small: bool, redactor: PixelRedactor, check: bool) -> Score:
    manifest = generate_corpus(root, seed=0, studies=1, small=small)
    total = Score()
    for rec in manifest.files:
        src = root / rec.path
        ds = pydicom.dcmread(src)
        before = decode(pydicom.dcmread(src)).frames
        report = redactor.redact_dataset(ds, phi_values(ds), "always")
        assert report.status != "failed", (rec.path, report.error_code)
        after = decode(_roundtrip(ds)).frames  # every output decodes
        truth = truth_boxes(rec.burned_in)
        total.add(score_frames(before, after, truth))
        if check and report.boxes:
            out = root / (rec.path.replace("/", "_") + ".out.dcm")
            ds.save_as(out, enforce_file_format=True)
            assert _dciodvfy_errors(out) <= _dciodvfy_errors(src), rec.path
    return total


def test_synthetic_corpus_recall(tmp_path: Path, redactor: PixelRedactor) -> None:
    assert shutil.which("dciodvfy"), "dciodvfy (dicom3tools) is required"
    total = _run_corpus(tmp_path / "c", False, redactor, check=True)
    assert total.recall >= RECALL_FLOOR, total
    assert total.kept >= BENIGN_KEPT_FLOOR, total


def test_small_synthetic_corpus_recall(tmp_path: Path, redactor: PixelRedactor) -> None:
    total = _run_corpus(tmp_path / "c", True, redactor, check=False)
    assert total.recall >= SMALL_RECALL_FLOOR, total
    assert total.kept >= BENIGN_KEPT_FLOOR, total


def test_presidio_reference_file(shared_reference: Path, redactor: PixelRedactor) -> None:
    folder = shared_reference / "dicom" / "burned_in"
    gt = json.loads((folder / "presidio__2_ORIGINAL.ground_truth.json").read_text())
    ds = pydicom.dcmread(folder / "presidio__2_ORIGINAL.dcm")
    before = decode(pydicom.dcmread(folder / "presidio__2_ORIGINAL.dcm")).frames
    report = redactor.redact_dataset(ds, phi_values(ds), "always")
    assert report.status == "redacted"
    after = decode(_roundtrip(ds)).frames
    truth = [
        GroundTruthBox(
            (0,), (b["left"], b["top"], b["left"] + b["width"], b["top"] + b["height"]), True
        )
        for b in gt["boxes_image_px"]
    ]
    score = score_frames(before, after, truth)
    assert score.phi_found == score.phi_total == len(truth)


@pytest.mark.parametrize(
    "name",
    [
        "deid-data__RGB_IMAGE.dcm",
        "pydicom-data__OBXXXX1A_rle.dcm",
        "pydicom-data__OBXXXX1A_2frame.dcm",
    ],
)
def test_reference_header_phi_no_longer_legible(
    shared_reference: Path, redactor: PixelRedactor, name: str, tmp_path: Path
) -> None:
    path = shared_reference / "dicom" / "burned_in" / name
    ds = pydicom.dcmread(path)
    syntax = str(ds.file_meta.TransferSyntaxUID)
    report = redactor.redact_dataset(ds, phi_values(ds), "always")
    # held for review is allowed only for unreadable text, never for PHI still legible
    assert report.status in ("redacted", "held")
    assert "phi_legible" not in report.held_reasons
    assert report.boxes_redacted >= 2
    out = _roundtrip(ds)
    assert str(out.file_meta.TransferSyntaxUID) == syntax
    decode(out)
    # a second pass over the output finds no header PHI left to redact (matched, not every
    # text: under redact_all_text, the default for US, a kept marker read again a little
    # differently, MH3 for MHz, would count)
    match_phi = PixelPolicyConfig(mode_modalities={}, mode_sop_classes={}, burned_in_mode=None)
    checker = PixelRedactor(match_phi)
    again = checker.redact_dataset(out, phi_values(pydicom.dcmread(path)), "always")
    assert again.phi_regions == 0
    if shutil.which("dciodvfy"):
        target = tmp_path / "out.dcm"
        ds.save_as(target, enforce_file_format=True)
        before = _dciodvfy_errors(path)
        assert _dciodvfy_errors(target) <= before


def _dciodvfy_errors(path: Path) -> int:
    proc = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, check=False)
    return sum(line.startswith("Error") for line in (proc.stdout + proc.stderr).splitlines())


def test_two_ocr_threads_redact_the_same(tmp_path: Path, redactor: PixelRedactor) -> None:
    """``ocr_threads`` (CLI speed-up) changes only ONNX Runtime threading, not what is found."""
    threaded = PixelRedactor(PixelPolicyConfig(ocr_threads=2))
    manifest = generate_corpus(tmp_path / "c", seed=0, studies=1, small=False)
    for rec in manifest.files[::6]:
        reports = []
        for engine in (redactor, threaded):
            ds = pydicom.dcmread(tmp_path / "c" / rec.path)
            reports.append(engine.redact_dataset(ds, phi_values(ds), "always"))
        assert reports[0].boxes, rec.path
        assert reports[0].boxes == reports[1].boxes, rec.path
        assert reports[0].status == reports[1].status, rec.path


@pytest.mark.restricted
def test_restricted_burned_in_set_never_releases_legible_phi(
    restricted_burned_in: Path, redactor: PixelRedactor
) -> None:
    """The JSL burned-in files (not carried by the repository): redacted, or held for text it
    could not read, never released with PHI still legible."""
    files = sorted(restricted_burned_in.glob("jsl__*.dcm"))
    assert files, f"no JSL files under {restricted_burned_in}"
    for path in files:
        ds = pydicom.dcmread(path)
        report = redactor.redact_dataset(ds, phi_values(ds), "always")
        assert report.status in ("redacted", "held"), path.name
        assert "phi_legible" not in report.held_reasons, path.name
