"""The reference data the repository carries: the licensed files, byte for byte, no others."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "MANIFEST.csv").open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_every_licensed_file_is_carried_with_its_sha256(shared_reference: Path) -> None:
    folder = shared_reference / "dicom"
    licensed = [r for r in _rows(folder) if r["licence"].startswith("MIT")]
    assert len(licensed) >= 45
    for row in licensed:
        data = (folder / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]
        assert len(data) == int(row["size_bytes"]), row["file"]


def test_files_without_a_licence_are_not_carried(shared_reference: Path) -> None:
    folder = shared_reference / "dicom"
    unlicensed = [r for r in _rows(folder) if not r["licence"].startswith("MIT")]
    assert unlicensed, "the manifest lists the restricted files too"
    for row in unlicensed:
        stem = (folder / row["file"]).with_suffix("")
        assert not list(stem.parent.glob(stem.name + "*")), row["file"]
