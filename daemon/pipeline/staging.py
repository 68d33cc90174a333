"""The staging area: a job's fetched instances and de-identified outputs, bounded.

Nothing reaches the destination before the study's decision allows it, and a series is never
held in memory past a fixed budget: a fetched instance or a passed output stays in memory while
every job of this process together holds less than ``memory_max_bytes`` there; past it, it is
written to ``<root>/<job>/in/`` or ``<root>/<job>/out/`` and the release reads it back only
while sending it.  (Writing each small instance to disk and reading it back costs the transfer
path more than the copy itself: file creation gives up the GIL to the de-identification
threads at every system call.)  The area of a job is wiped when the job (re)starts and removed
when it ends.  All staged bytes on disk stay under ``max_bytes``: past it, staging raises a
retriable error (the job is retried later, never released short).  Files are 0600 in 0700
folders: they hold PHI.
"""

from __future__ import annotations

import errno
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import ServiceUnavailableError

# an instance larger than this share of the memory budget is staged on disk
MEMORY_SHARE = 32

Staged = bytes | Path
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})
"""One staged instance: its bytes (memory tier) or the file holding them."""


@dataclass
class Staging:
    """The staging root shared by every job of this daemon."""

    root: Path
    max_bytes: int
    memory_max_bytes: int = 0
    _used: int = 0
    _memory: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, job_key: str) -> JobArea:
        """A fresh area for one run of a job (what an earlier run left is removed)."""
        self.remove(job_key)
        folder = self.root / job_key[:32]
        for sub in ("in", "out"):
            (folder / sub).mkdir(parents=True, mode=0o700, exist_ok=True)
        return JobArea(self, folder)

    def hold(self, area: str, size: int) -> bool:
        """Count ``size`` bytes kept in memory for ``area`` when the budget allows; whether it
        did (else the caller writes them to disk).  An instance over a thirty-second of the
        budget always goes to disk: large instances are few (the system calls per instance
        matter little there) and would crowd out the many small ones."""
        if size > self.memory_max_bytes // MEMORY_SHARE:
            return False
        with self._lock:
            if sum(self._memory.values()) + size > self.memory_max_bytes:
                return False
            self._memory[area] = self._memory.get(area, 0) + size
            return True

    def release_held(self, area: str, size: int) -> None:
        """Count ``size`` bytes of ``area`` as no longer kept in memory."""
        with self._lock:
            left = self._memory.get(area, 0) - size
            if left > 0:
                self._memory[area] = left
            else:
                self._memory.pop(area, None)

    @property
    def held_bytes(self) -> int:
        """Bytes staged in memory by this process now."""
        with self._lock:
            return sum(self._memory.values())

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
        with self._lock:
            self._memory.pop(folder.name, None)
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
    """One job's staging: in memory within the budget, else ``in/<n>.dcm`` fetched and
    ``out/<n>.dcm`` de-identified."""

    staging: Staging
    folder: Path
    _count: int = 0

    def stage_input(self, raw: bytes) -> Staged:
        """Keep one fetched instance (in memory, or written to disk: its path; blocking)."""
        self._count += 1
        return self._keep(raw, self.folder / "in" / f"{self._count:08d}.dcm")

    def stage_output(self, source: Staged, data: bytes) -> Staged:
        """Keep the de-identified output of ``source`` (a staged input; blocking)."""
        if isinstance(source, Path):
            return self._keep(data, self.folder / "out" / source.name)
        self._count += 1
        return self._keep(data, self.folder / "out" / f"{self._count:08d}.dcm")

    def drop_input(self, source: Staged) -> None:
        """Forget a fetched instance once processed (its output, if any, is staged)."""
        if isinstance(source, bytes):
            self.staging.release_held(self.folder.name, len(source))
            return
        try:
            size = source.stat().st_size
            source.unlink()
        except FileNotFoundError:
            return
        self.staging.give_back(size)

    def _keep(self, data: bytes, path: Path) -> Staged:
        if self.staging.hold(self.folder.name, len(data)):
            return data
        self.staging.reserve(len(data))
        try:
            write_bytes_atomic(path, data, durable=False)
        except OSError as exc:
            self.staging.give_back(len(data))  # nothing was staged: the budget stays true
            if exc.errno in _DISK_FULL:
                # the disk, not the input: retried like the staging budget's own limit
                raise ServiceUnavailableError("staging disk full") from exc
            raise
        return path
