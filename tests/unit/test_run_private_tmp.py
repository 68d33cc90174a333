"""``dxai run`` keeps its temporary files (C-STORE datasets while they arrive) under the data
dir, not in a container's small ``/tmp``, unless ``TMPDIR`` says where."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from dxai.daemon.cli.run_cmd import STALE_TMP_S, use_private_tmp


def test_temporary_files_go_under_the_data_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)
    folder = tmp_path / "data" / "tmp"
    folder.mkdir(parents=True)
    stale, fresh = folder / "tmpold.dcm", folder / "tmpnew.dcm"
    stale.write_bytes(b"left by a killed daemon")
    fresh.write_bytes(b"another daemon's transfer")
    old = stale.stat().st_mtime - STALE_TMP_S - 60
    os.utime(stale, (old, old))
    assert use_private_tmp(tmp_path / "data") == folder
    assert tempfile.gettempdir() == str(folder)
    assert not stale.exists() and fresh.exists()


def test_an_explicit_tmpdir_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert use_private_tmp(tmp_path / "data") is None
    assert tempfile.gettempdir() == str(tmp_path)
    assert not (tmp_path / "data").exists()
