"""Local-folder study source: DICOM files under a path, grouped by series (reads in threads)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import anyio.to_thread

from dxai.actors.inflate import dcmread_bounded
from dxai.configs.errors import SourceNotAllowedError
from dxai.daemon.gateways.dicomweb import StudyNotFoundError

_TAGS = ["StudyInstanceUID", "SeriesInstanceUID"]


def _confinement(root: Path, within: Path | None) -> Path:
    """The folder every file read must resolve into: ``within``, else ``root`` itself."""
    if within is not None:
        return within
    real_root = root.resolve()
    return real_root if real_root.is_dir() else real_root.parent


def scan_folder(root: Path, study_uid: str, within: Path | None = None) -> dict[str, list[Path]]:
    """Files of ``study_uid`` under ``root`` by Series Instance UID (blocking; use a thread).

    A file whose resolved path (symbolic links followed) leaves ``within`` (default: ``root``)
    is skipped.
    """
    series: dict[str, list[Path]] = {}
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    inside = _confinement(root, within)
    paths = [p for p in paths if p.resolve().is_relative_to(inside)]
    for path in paths:
        uids = _study_and_series(path)
        if uids is None or uids[0] != study_uid:
            continue
        series.setdefault(uids[1], []).append(path)
    return series


def _study_and_series(path: Path) -> tuple[str, str] | None:
    """(Study, Series Instance UID) of a file; None when its header cannot be read.

    Tolerant: files without the Part 10 preamble are instances too.  Any failure to read is
    an unreadable file, not a failed job: a damaged one fails pydicom in many ways (a deeply
    nested sequence raised RecursionError here and crashed its whole job).
    """
    try:
        ds = dcmread_bounded(path, stop_before_pixels=True, force=True, specific_tags=_TAGS)
        return str(ds.get("StudyInstanceUID", "")), str(ds.get("SeriesInstanceUID", ""))
    except Exception:  # noqa: BLE001 - unreadable files are skipped, as they always were
        return None


def read_inside(path: Path, within: Path) -> bytes:
    """``path``'s bytes, unless it now resolves out of ``within`` (a link swapped since the scan).

    Blocking; an escaped file raises :class:`SourceNotAllowedError`.
    """
    if not path.resolve().is_relative_to(within):
        raise SourceNotAllowedError("a local file left the allowed root after the scan")
    return path.read_bytes()


class LocalFolderSource:
    """A study source reading the files under one folder, confined to ``within`` (default: it)."""

    def __init__(self, root: str | Path, within: str | Path | None = None) -> None:
        self.root = Path(root)
        self.within = Path(within).resolve() if within is not None else None
        self._index: dict[str, list[Path]] | None = None

    async def _scan(self, study_uid: str) -> dict[str, list[Path]]:
        if self._index is None:
            self._index = await anyio.to_thread.run_sync(
                scan_folder, self.root, study_uid, self.within
            )
        return self._index

    async def list_series(self, study_uid: str) -> list[str]:
        """Series found under the folder; raise :class:`StudyNotFoundError` when none."""
        index = await self._scan(study_uid)
        if not index:
            raise StudyNotFoundError(f"study {study_uid} not found under the local source")
        return sorted(index)

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """Each file of the series as bytes (read in a worker thread)."""
        paths = (await self._scan(study_uid)).get(series_uid, [])
        inside = await anyio.to_thread.run_sync(_confinement, self.root, self.within)
        for path in paths:
            yield await anyio.to_thread.run_sync(read_inside, path, inside)

    async def aclose(self) -> None:
        """Nothing to release."""
