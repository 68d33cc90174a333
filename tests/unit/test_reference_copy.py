"""The reference data carried in the repository is the documented byte-for-byte copy."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path


def test_every_manifest_file_is_present_with_its_sha256(shared_reference: Path) -> None:
    folder = shared_reference / "dicom"
    with (folder / "MANIFEST.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) >= 50
    for row in rows:
        data = (folder / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"], row["file"]
        assert len(data) == int(row["size_bytes"]), row["file"]
