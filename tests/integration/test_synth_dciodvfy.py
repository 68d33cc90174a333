"""Every synthetic file passes dciodvfy (dicom3tools) with no errors."""

from __future__ import annotations

from pathlib import Path

from dxai.actors.validation.dciodvfy import run_dciodvfy
from dxai.synth import generate_corpus


def test_synthetic_corpus_is_valid(tmp_path: Path) -> None:
    manifest = generate_corpus(tmp_path, seed=0, studies=3, small=True)
    failures: dict[str, list[str]] = {}
    for record in manifest.files:
        report = run_dciodvfy(tmp_path / record.path)
        if not report.ok:
            failures[record.path] = sorted(report.error_kinds()) or ["crashed"]
    assert failures == {}
    assert len(manifest.files) == 162  # ASCII, ISO_IR 100 and ISO_IR 192 patients
