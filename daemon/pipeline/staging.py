"""The staging area: a job's fetched instances and de-identified outputs on disk, bounded.

Nothing reaches the destination before the study's decision allows it, and a series is never
held in memory: each fetched instance is written to ``<root>/<job>/in/`` as it arrives, each
passed output to ``<root>/<job>/out/``; the release reads them back one chunk at a time.  The
area of a job is wiped when the job (re)starts and removed when it ends.  All staged bytes of
this process together stay under ``max_bytes``: past it, staging raises a retriable error (the
job is retried later, never released short).  Files are 0600 in 0700 folders: they hold PHI.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import ServiceUnavailableError


@dataclass
class Staging:
    """The staging root shared by every job of this daemon."""

    root: Path
    max_bytes: int
    _used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, job_key: str) -> JobArea:
        """A fresh area for one run of a job (what an earlier run left is removed)."""
        self.remove(job_key)
        folder = self.root / job_key[:32]
        for sub in ("in", "out"):
            (folder / sub).mkdir(parents=True, mode=0o700, exist_ok=True)
        return JobArea(self, folder)

    def sweep(self, keep: set[str]) -> int:
        """Remove every job area whose job is not in ``keep`` (job keys); how many (blocking)."""
        kept = {key[:32] for key in keep}
        stale = [p for p in self.root.glob("*") if p.is_dir() and p.name not in kept]
        for folder in stale:
            self.remove(folder.name)
        return len(stale)

    def remove(self, job_key: str) -> None:
        """Delete a job's area and give its bytes back (blocking; idempotent)."""
        folder = self.root / job_key[:32]
        if folder.exists():
            freed = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
            shutil.rmtree(folder, ignore_errors=True)
            self.give_back(freed)

    def reserve(self, size: int) -> None:
        """Count ``size`` more staged bytes; ServiceUnavailableError past ``max_bytes``."""
        with self._lock:
            if self._used + size > self.max_bytes:
                raise ServiceUnavailableError(
                    f"staging area full ({self._used + size} > {self.max_bytes} bytes)"
                )
            self._used += size

    def give_back(self, size: int) -> None:
        """Count ``size`` staged bytes as freed."""
        with self._lock:
            self._used = max(0, self._used - size)

    @property
    def used_bytes(self) -> int:
        """Bytes staged by this process now."""
        with self._lock:
            return self._used


@dataclass
class JobArea:
    """One job's staging folder: ``in/<n>.dcm`` fetched, ``out/<n>.dcm`` de-identified."""

    staging: Staging
    folder: Path
    _count: int = 0

    def stage_input(self, raw: bytes) -> Path:
        """Write one fetched instance to disk and return its path (blocking)."""
        self.staging.reserve(len(raw))
        self._count += 1
        path = self.folder / "in" / f"{self._count:08d}.dcm"
        write_bytes_atomic(path, raw, durable=False)
        return path

    def stage_output(self, source: Path, data: bytes) -> Path:
        """Write the de-identified output of ``source`` (an input path) and return its path."""
        self.staging.reserve(len(data))
        path = self.folder / "out" / source.name
        write_bytes_atomic(path, data, durable=False)
        return path

    def drop_input(self, source: Path) -> None:
        """Forget a fetched instance once processed (its output, if any, is staged)."""
        try:
            size = source.stat().st_size
            source.unlink()
        except FileNotFoundError:
            return
        self.staging.give_back(size)
