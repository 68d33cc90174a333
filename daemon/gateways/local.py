"""Local-folder study source: DICOM files under a path, grouped by series (reads in threads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread
import pydicom
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.daemon.gateways.dicomweb import StudyNotFoundError

_TAGS = ["StudyInstanceUID", "SeriesInstanceUID"]


def scan_folder(root: Path, study_uid: str) -> dict[str, list[Path]]:
    """Files of ``study_uid`` under ``root`` by Series Instance UID (blocking; use a thread)."""
    series: dict[str, list[Path]] = {}
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        try:
            # tolerant: files without the Part 10 preamble are instances too
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True, specific_tags=_TAGS)
        except (PydicomInvalid, OSError, ValueError, EOFError, TypeError, KeyError, AttributeError):
            continue
        if str(ds.get("StudyInstanceUID", "")) != study_uid:
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(path)
    return series


class LocalFolderSource:
    """A study source reading the files under one folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self._index: dict[str, list[Path]] | None = None

    async def _scan(self, study_uid: str) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = await anyio.to_thread.run_sync(scan_folder, self.root, study_uid)
        return self._index

    async def list_series(self, study_uid: str) -> list[str]:
        """Series found under the folder; raise :class:`StudyNotFoundError` when none."""
        index = await self._scan(study_uid)
        if not index:
            raise StudyNotFoundError(f"study {study_uid} not found under the local source")
        return sorted(index)

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """Each file of the series as bytes (read in a worker thread)."""
        for path in (await self._scan(study_uid)).get(series_uid, []):
            yield await anyio.to_thread.run_sync(path.read_bytes)

    async def aclose(self) -> None:
        """Nothing to release."""
