"""Folder destination for embedded mode: de-identified instances written as files, atomically."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import anyio.to_thread
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.actors.inflate import dcmread_bounded
from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import InvalidDicomError
from dxai.daemon.gateways.base import InstanceData, StoreReport

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_TAGS = ["StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"]


def is_uid(value: str) -> bool:
    """True for a syntactically valid DICOM UID (safe to use as a file or folder name)."""
    return 0 < len(value) <= 64 and _UID.match(value) is not None


def _target(root: Path, raw: bytes) -> Path | None:
    try:
        ds = dcmread_bounded(raw, stop_before_pixels=True, specific_tags=_TAGS)
    except (PydicomInvalid, InvalidDicomError, EOFError, ValueError, TypeError):
        return None
    uids = [str(ds.get(t, "")) for t in _TAGS]
    if not all(is_uid(u) for u in uids):
        return None
    study, series, sop = uids
    return root / study / series / f"{sop}.dcm"


def store_files_blocking(root: Path, instances: Sequence[InstanceData]) -> StoreReport:
    """Write each instance to ``root/<study>/<series>/<sop>.dcm``; refuse unreadable ones.

    A file (``Path``) is read only when its turn comes: one instance in memory at a time.
    """
    failed: list[str] = []
    for index, item in enumerate(instances):
        try:
            raw = item.read_bytes() if isinstance(item, Path) else item
        except OSError:
            failed.append(f"index-{index}")
            continue
        target = _target(root, raw)
        if target is None:
            failed.append(f"index-{index}")
            continue
        write_bytes_atomic(target, raw)
    return StoreReport(stored=len(instances) - len(failed), failed_uids=tuple(failed))


class FolderSink:
    """A destination folder; storing the same SOP Instance UID twice keeps one file."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def store(self, instances: Sequence[InstanceData]) -> StoreReport:
        """Write ``instances`` (bytes, or files read one at a time) in a worker thread."""
        if not instances:
            return StoreReport(stored=0)
        return await anyio.to_thread.run_sync(store_files_blocking, self.root, instances)

    async def aclose(self) -> None:
        """Nothing held between calls."""
