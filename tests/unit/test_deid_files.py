"""File-level behaviour: bad input reported not raised, atomic writes, keys, re-id map, CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from deid_helpers import KEY, SOP_UID, deidentifier, make_ds, write
from pydicom import dcmread
from pydicom.filewriter import dcmwrite

from dxai.actors.deid import ReidentificationStore, load_or_create_key
from dxai.actors.deid.fileio import is_probably_dicom
from dxai.actors.outbound import deidentify_file
from dxai.configs.errors import ConfigError
from dxai.daemon.cli import main


def _only_outputs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


def test_truncated_file_fails_cleanly(tmp_path: Path) -> None:
    ds = make_ds()
    ds.PixelData = b"\x00" * 4096
    ds.Rows, ds.Columns, ds.BitsAllocated = 64, 32, 16
    src = write(ds, tmp_path / "full.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(src.read_bytes()[:-3000])
    out = tmp_path / "out"
    report = deidentify_file(cut, out / "cut.dcm", deidentifier())
    assert report.status == "failed" and report.errors
    assert "DOE" not in " ".join(report.errors)
    assert _only_outputs(out) == []


def test_garbage_fails_cleanly(tmp_path: Path) -> None:
    src = tmp_path / "garbage.dcm"
    src.write_bytes(b"\x08\x00" + bytes(range(256)) * 8)
    report = deidentify_file(src, tmp_path / "out" / "g.dcm", deidentifier())
    assert report.status == "failed" and report.errors[0].startswith("read")
    assert _only_outputs(tmp_path / "out") == []
    text = tmp_path / "notes.txt"
    text.write_text("hello, not DICOM")
    assert not is_probably_dicom(text)


def test_missing_preamble_is_read(tmp_path: Path) -> None:
    ds = make_ds()
    src = tmp_path / "nopreamble.dcm"
    dcmwrite(src, ds, enforce_file_format=False)  # no preamble, no DICM
    assert src.read_bytes()[128:132] != b"DICM"
    dst = tmp_path / "out" / "x.dcm"
    report = deidentify_file(src, dst, deidentifier())
    assert report.status == "ok", report.errors
    assert dst.read_bytes()[128:132] == b"DICM"


def test_held_instance_is_not_written(tmp_path: Path) -> None:
    # A site keep rule on an identifying attribute leaks a value removed elsewhere: held.
    leaky = deidentifier(keep_tags=("PatientComments",))
    ds = make_ds()
    ds.PatientComments = "lives at 12 Elm Street Springfield"
    src = write(ds, tmp_path / "in.dcm")
    report = deidentify_file(src, tmp_path / "out" / "in.dcm", leaky)
    assert report.status == "held"
    assert report.verify["passed"] is False and report.verify["findings"]
    assert "Elm" not in json.dumps(report.as_dict())
    assert _only_outputs(tmp_path / "out") == []
    assert deidentify_file(src, tmp_path / "out" / "in.dcm", deidentifier()).status == "ok"


def test_huge_private_block(tmp_path: Path) -> None:
    ds = make_ds()
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    for element in range(0x10, 0x100):
        block.add_new(element, "OB", b"DOE " * 4096)
    src = write(ds, tmp_path / "big.dcm")
    dst = tmp_path / "out" / "big.dcm"
    report = deidentify_file(src, dst, deidentifier("retain_safe_private"))
    assert report.status == "ok" and report.actions["private_removed"] == 241
    assert b"DOE " not in dst.read_bytes()


def test_output_keeps_transfer_syntax_and_meta(tmp_path: Path) -> None:
    src = write(make_ds(), tmp_path / "in.dcm")
    dst = tmp_path / "out" / "in.dcm"
    deidentify_file(src, dst, deidentifier())
    out = dcmread(dst)
    assert out.file_meta.TransferSyntaxUID == dcmread(src).file_meta.TransferSyntaxUID
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID != SOP_UID


def test_key_generated_once_with_mode_0600(tmp_path: Path) -> None:
    key, path, created = load_or_create_key(None, tmp_path)
    assert created and path == tmp_path / "keys" / "deid.key" and len(key) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, _, created_again = load_or_create_key(None, tmp_path)
    assert again == key and not created_again
    short = tmp_path / "short.key"
    short.write_text("abcd")
    with pytest.raises(ConfigError):
        load_or_create_key(short, tmp_path)


def test_reidentification_store(tmp_path: Path) -> None:
    result = deidentifier().deidentify(make_ds())
    store = ReidentificationStore(tmp_path / "state.sqlite3")
    store.record(result)
    assert store.original_uid(result.dataset.SOPInstanceUID) == SOP_UID
    assert store.original_patient_id(result.dataset.PatientID) == "PID778899"
    assert store.original_uid("2.25.1") is None
    store.close()


def _tree(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    (src / "a" / "b").mkdir(parents=True)
    write(make_ds(), src / "a" / "b" / "one.dcm")
    (src / "readme.txt").write_text("not dicom")
    return src


def test_cli_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DXAI_STATE__DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DXAI_DEID__REIDENTIFICATION_MAP", "true")
    src = _tree(tmp_path)
    report = tmp_path / "report.json"
    code = main(["deid", str(src), str(tmp_path / "dst"), "--report", str(report)])
    assert code == 0
    data = json.loads(report.read_text())
    assert data["status_counts"] == {"ok": 1} and data["skipped_non_dicom"] == ["readme.txt"]
    assert data["files"][0]["verify"]["passed"] is True
    assert (tmp_path / "dst" / "a" / "b" / "one.dcm").is_file()
    assert (tmp_path / "data" / "keys" / "deid.key").is_file()
    assert (tmp_path / "data" / "dxai.sqlite3").is_file()


def test_cli_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DXAI_STATE__DATA_DIR", str(tmp_path / "data"))
    src = _tree(tmp_path)
    key = tmp_path / "k.key"
    key.write_text(KEY.hex())
    bad = src / "a" / "bad.dcm"
    bad.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    args = ["deid", str(src), str(tmp_path / "d"), "--key-file", str(key), "--no-progress"]
    assert main([*args, "--profile", "research_longitudinal"]) == 1
    assert main([*args, "--profile", "nope"]) == 2


def test_cli_pixel_step_unavailable_writes_no_output_and_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fail closed: when the pixel step cannot run (its models are not in the registry), no
    header-only file lands in DST and the exit code says so."""
    monkeypatch.setenv("DXAI_STATE__DATA_DIR", str(tmp_path / "data"))
    broken = tmp_path / "models.yaml"
    broken.write_text("models: {}\n", encoding="utf-8")
    monkeypatch.setenv("DXAI_INFERENCE__MODELS_FILE", str(broken))
    src = tmp_path / "src"
    src.mkdir()
    ds = make_ds()
    ds.Rows, ds.Columns, ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 8, 8, 7
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PixelRepresentation = 1, "MONOCHROME2", 0
    ds.BurnedInAnnotation = "YES"
    ds.PixelData = bytes(64)
    write(ds, src / "img.dcm")
    dst = tmp_path / "dst"
    code = main(["deid", str(src), str(dst), "--pixels", "always", "--no-progress"])
    assert code == 1
    assert not (dst / "img.dcm").exists()
    report = json.loads((dst / "dxai-deid-report.json").read_text())
    entry = report["files"][0]
    assert entry["status"] in ("held", "failed") and entry["reason"].startswith("pixel_")
    assert entry["dst"] is None or ".held" in entry["dst"]


def test_cli_refuses_a_known_regions_script_that_does_not_parse(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DXAI_STATE__DATA_DIR", str(tmp_path / "data"))
    script = tmp_path / "site.script"
    script.write_text('{ Modality.equals("CT") \n(0,0,10,10)\n', encoding="utf-8")
    monkeypatch.setenv("DXAI_DEID__PIXEL_POLICY__KNOWN_REGIONS_FILE", str(script))
    src = _tree(tmp_path)
    assert main(["deid", str(src), str(tmp_path / "dst"), "--pixels", "auto"]) == 2
    err = capsys.readouterr().err
    assert "known_regions_file" in err and "line" in err
    assert not (tmp_path / "dst" / "a" / "b" / "one.dcm").exists()
