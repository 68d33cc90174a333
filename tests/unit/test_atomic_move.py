"""configs.atomic.move_file_atomic: a received file moved into place whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from dxai.configs.atomic import move_file_atomic


def test_a_file_is_moved_into_a_new_folder(tmp_path: Path) -> None:
    src, dst = tmp_path / "incoming.dcm", tmp_path / "zone" / "study" / "sop.dcm"
    src.write_bytes(b"DICM" * 1000)
    move_file_atomic(src, dst)
    assert dst.read_bytes() == b"DICM" * 1000 and not src.exists()
    assert [p.name for p in dst.parent.iterdir()] == ["sop.dcm"]  # no temporary file left


def test_a_failed_move_leaves_the_target_untouched(tmp_path: Path) -> None:
    dst = tmp_path / "sop.dcm"
    dst.write_bytes(b"before")
    with pytest.raises(FileNotFoundError):
        move_file_atomic(tmp_path / "gone.dcm", dst, durable=False)
    assert dst.read_bytes() == b"before"
    assert [p.name for p in tmp_path.iterdir()] == ["sop.dcm"]
