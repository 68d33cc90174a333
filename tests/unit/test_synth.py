"""The synthetic study generator: determinism, decodability, ground truth faithful to the files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.charset import convert_encodings

from dxai.daemon.cli import synth_cmd
from dxai.synth import (
    GROUND_TRUTH_NAME,
    MODALITIES,
    TRANSFER_SYNTAXES,
    CorpusManifest,
    FileRecord,
    SynthError,
    generate_corpus,
)
from dxai.synth.identities import make_identity


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusManifest]:
    """One small study per modality, every suitable transfer syntax."""
    root = tmp_path_factory.mktemp("synth")
    return root, generate_corpus(root, seed=0, studies=1, small=True)


@pytest.fixture(scope="module")
def charset_corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, CorpusManifest]:
    """Three patients (ASCII, ISO_IR 100, ISO_IR 192 names), SC only, native encodings."""
    root = tmp_path_factory.mktemp("synth_charsets")
    manifest = generate_corpus(
        root,
        seed=0,
        studies=3,
        modalities=("SC",),
        transfer_syntaxes=("explicit", "implicit"),
        small=True,
    )
    return root, manifest


def _expected_pixel_shape(record: FileRecord, ds: pydicom.Dataset) -> tuple[int, ...]:
    shape: tuple[int, ...] = (record.rows, record.columns)
    if record.frames > 1:
        shape = (record.frames, *shape)
    if int(ds.SamplesPerPixel) == 3:
        shape = (*shape, 3)
    return shape


def test_coverage_matrix(corpus: tuple[Path, CorpusManifest]) -> None:
    _, manifest = corpus
    seen = {(r.modality, r.transfer_syntax_uid) for r in manifest.files}
    expected = {(name, uid) for name, spec in MODALITIES.items() for uid in spec.ts_uids()}
    assert seen == expected
    jpeg = str(TRANSFER_SYNTAXES["jpeg"])
    assert {m for m, ts in seen if ts == jpeg} == {"US", "SC"}
    assert len(manifest.files) == 2 * len(expected)


def test_files_parse_decode_and_match_record(corpus: tuple[Path, CorpusManifest]) -> None:
    root, manifest = corpus
    for record in manifest.files:
        ds = pydicom.dcmread(root / record.path)
        assert ds.file_meta.TransferSyntaxUID == record.transfer_syntax_uid
        assert ds.SOPClassUID == record.sop_class_uid
        assert ds.SOPInstanceUID == record.sop_instance_uid
        assert ds.SeriesInstanceUID == record.series_instance_uid
        assert ds.StudyInstanceUID == record.study_instance_uid
        arr = ds.pixel_array
        assert arr.shape == _expected_pixel_shape(record, ds), record.path
        assert float(np.ptp(arr)) > 0


def test_second_instance_references_first(corpus: tuple[Path, CorpusManifest]) -> None:
    root, manifest = corpus
    by_path = manifest.by_path()
    for record in manifest.files:
        if not record.path.endswith("/1.dcm"):
            continue
        first = by_path[record.path[: -len("1.dcm")] + "0.dcm"]
        ds = pydicom.dcmread(root / record.path, stop_before_pixels=True)
        assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == first.sop_instance_uid
        assert first.sop_instance_uid in record.original_uids
        for uid in (record.study_instance_uid, record.series_instance_uid, record.sop_instance_uid):
            assert uid in record.original_uids


def _header_bytes(path: Path) -> bytes:
    """The file up to the Pixel Data tag, so pixel bytes cannot produce a match by accident."""
    raw = path.read_bytes()
    end = raw.rfind(b"\xe0\x7f\x10\x00")
    assert end > 0
    return raw[:end]


def _encodings(ds: pydicom.Dataset) -> list[str]:
    return convert_encodings(ds.get("SpecificCharacterSet", "ISO_IR 6"))


def test_phi_strings_present_in_header(
    corpus: tuple[Path, CorpusManifest], charset_corpus: tuple[Path, CorpusManifest]
) -> None:
    for root, manifest in (corpus, charset_corpus):
        for record in manifest.files:
            path = root / record.path
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            head = _header_bytes(path)
            encoding = _encodings(ds)[-1]
            assert record.phi_strings
            for text in record.phi_strings:
                assert text.encode(encoding) in head, (record.path, text)


def test_header_phi_locations(corpus: tuple[Path, CorpusManifest]) -> None:
    root, manifest = corpus
    record = manifest.files[0]
    ds = pydicom.dcmread(root / record.path, stop_before_pixels=True)
    assert str(ds.PatientName) in record.phi_strings
    assert ds.OtherPatientIDsSequence[0].PatientID in record.phi_strings
    assert ds.RequestAttributesSequence[0].ScheduledProcedureStepID in record.phi_strings
    acme = ds.private_block(0x0011, "ACME_PRIVATE_1")
    assert acme[0x10].value == str(ds.PatientName)
    assert ds.private_block(0x0043, "GEMS_PARM_01")[0x27].value == "1.375:1"
    assert ds.private_block(0x0029, "SIEMENS CSA HEADER")[0x10].VR == "OB"


def test_non_ascii_character_sets(charset_corpus: tuple[Path, CorpusManifest]) -> None:
    root, manifest = charset_corpus
    charsets = set()
    for record in manifest.files:
        ds = pydicom.dcmread(root / record.path, stop_before_pixels=True)
        charsets.add(ds.get("SpecificCharacterSet"))
        assert str(ds.PatientName) in record.phi_strings
    assert {"ISO_IR 100", "ISO_IR 192"} <= charsets


def test_burned_in_boxes(corpus: tuple[Path, CorpusManifest]) -> None:
    _, manifest = corpus
    kinds: set[str] = set()
    for record in manifest.files:
        for text in record.burned_in:
            x0, y0, x1, y1 = text.box
            assert 0 <= x0 < x1 <= record.columns and 0 <= y0 < y1 <= record.rows, record.path
            assert text.frames and all(0 <= f < record.frames for f in text.frames)
            assert text.phi == (text.kind != "marker")
            ink = text.ink_mask()
            assert ink is not None and ink.shape == (y1 - y0, x1 - x0) and ink.any()
            kinds.add(text.kind)
        assert any(not t.phi for t in record.burned_in), record.path
    assert kinds == {"name", "mrn", "dob", "accession", "institution", "date", "marker"}
    assert any(t.phi for r in manifest.files for t in r.burned_in)


def test_burned_in_text_changes_pixels(tmp_path: Path) -> None:
    manifest = generate_corpus(
        tmp_path, seed=3, studies=1, modalities=("MR",), transfer_syntaxes=("explicit",), small=True
    )
    for record in manifest.files:
        arr = pydicom.dcmread(tmp_path / record.path).pixel_array
        for text in record.burned_in:
            x0, y0, x1, y1 = text.box
            patch = arr[y0:y1, x0:x1]
            assert patch.size and float(np.ptp(patch)) > 0


def _small_us_dx(out: Path, seed: int) -> CorpusManifest:
    return generate_corpus(
        out,
        seed=seed,
        studies=1,
        modalities=("US", "DX"),
        transfer_syntaxes=("jpeg", "rle", "explicit"),
        small=True,
    )


def test_deterministic_bytes(tmp_path: Path) -> None:
    first = _small_us_dx(tmp_path / "a", 7)
    second = _small_us_dx(tmp_path / "b", 7)
    assert first == second
    for record in first.files:
        a_bytes = (tmp_path / "a" / record.path).read_bytes()
        assert a_bytes == (tmp_path / "b" / record.path).read_bytes(), record.path
    other = _small_us_dx(tmp_path / "c", 8)
    assert other.files[0].sop_instance_uid != first.files[0].sop_instance_uid
    assert other.files[0].phi_strings != first.files[0].phi_strings


def test_manifest_round_trip(corpus: tuple[Path, CorpusManifest]) -> None:
    root, manifest = corpus
    loaded = CorpusManifest.load(root / GROUND_TRUTH_NAME)
    assert loaded == manifest
    raw = json.loads((root / GROUND_TRUTH_NAME).read_text(encoding="utf-8"))
    assert raw["generator"] == "dxai.synth" and raw["seed"] == 0
    assert set(raw["files"][0]) >= {"path", "phi_strings", "original_uids", "burned_in", "frames"}


def test_rejects_unknown_inputs(tmp_path: Path) -> None:
    with pytest.raises(SynthError):
        generate_corpus(tmp_path, modalities=("PET",))
    with pytest.raises(SynthError):
        generate_corpus(tmp_path, transfer_syntaxes=("deflate",))
    with pytest.raises(SynthError):
        generate_corpus(tmp_path, modalities=("CT",), transfer_syntaxes=("jpeg",))


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    synth_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "synth",
            str(tmp_path),
            "--small",
            "--seed",
            "2",
            "--studies",
            "1",
            "--modalities",
            "sc",
            "--transfer-syntaxes",
            "explicit",
        ]
    )
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "wrote 2 files" in out and GROUND_TRUTH_NAME in out
    assert len(CorpusManifest.load(tmp_path / GROUND_TRUTH_NAME).files) == 2


def test_committed_sample_study_matches_its_ground_truth() -> None:
    root = Path(__file__).resolve().parents[1] / "data" / "sample-study"
    manifest = CorpusManifest.load(root / GROUND_TRUTH_NAME)
    on_disk = sorted(p.relative_to(root).as_posix() for p in root.rglob("*.dcm"))
    assert on_disk == sorted(r.path for r in manifest.files)
    assert sum(p.stat().st_size for p in root.rglob("*")) < 2 * 1024 * 1024
    for record in manifest.files:
        ds = pydicom.dcmread(root / record.path)
        assert ds.SOPInstanceUID == record.sop_instance_uid
        assert ds.pixel_array.shape == _expected_pixel_shape(record, ds)


def test_identities_fit_their_character_set() -> None:
    encodings = {None: "ascii", "ISO_IR 100": "latin_1", "ISO_IR 192": "utf-8"}
    for seed in range(3):
        for index in range(12):
            ident = make_identity(seed, index)
            encoding = encodings[ident.charset]
            for value in (
                ident.dicom_name,
                ident.address,
                ident.institution_address,
                ident.institution,
                ident.referring,
                ident.station,
            ):
                value.encode(encoding)  # raises if the declared repertoire cannot hold it
    assert make_identity(0, 0) == make_identity(0, 0)
    assert make_identity(0, 0) != make_identity(0, 1)
    assert any(make_identity(0, i).charset is None for i in range(10))
