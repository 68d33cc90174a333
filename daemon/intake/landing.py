"""The landing zone on disk: instances received by C-STORE, grouped by study, sealed per job.

Layout under ``root``: ``incoming/<study uid>/<sop uid>.dcm`` while a study is arriving, then
``batches/<job id>/`` plus ``batches/<job id>.json`` (its event) once its quiet period has passed.
Every write is atomic (temporary file + rename) and a lock keeps a late write from racing the
seal.  A restart re-submits every sealed event (the job store turns known ones into no-ops), so a
crash between sealing and the job being durable loses nothing.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable
from pathlib import Path

from dxai.configs.atomic import write_bytes_atomic
from dxai.daemon.gateways.folder import is_uid


class LandingZone:
    """Thread-safe file operations of the landing zone (blocking: call from worker threads)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.incoming = self.root / "incoming"
        self.batches = self.root / "batches"
        self._lock = threading.Lock()
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.batches.mkdir(parents=True, exist_ok=True)

    def write(self, study_uid: str, sop_uid: str, data: bytes) -> Path:
        """Store one instance of ``study_uid``; both UIDs must be valid (they name files)."""
        return self.put(study_uid, sop_uid, lambda target: write_bytes_atomic(target, data))

    def put(self, study_uid: str, sop_uid: str, place: Callable[[Path], None]) -> Path:
        """Store one instance of ``study_uid`` by ``place(target)``, which writes the file at
        ``target`` atomically and durably (under the lock: a seal cannot move the study's folder
        meanwhile); both UIDs must be valid (they name files)."""
        if not (is_uid(study_uid) and is_uid(sop_uid)):
            raise ValueError("landing zone needs valid study and SOP instance UIDs")
        target = self.incoming / study_uid / f"{sop_uid}.dcm"
        with self._lock:
            place(target)
        return target

    def batch_path(self, job_id: str) -> Path:
        """Where the instances of job ``job_id`` lie once sealed."""
        return (self.batches / job_id).resolve()

    def seal(self, study_uid: str, job_id: str, event: bytes) -> bool:
        """Record ``event`` then move ``incoming/<study_uid>`` to ``batches/<job_id>``.

        Returns False (and records nothing) when no instance of the study is waiting.
        """
        source = self.incoming / study_uid
        with self._lock:
            if not source.is_dir() or not any(source.iterdir()):
                return False
            write_bytes_atomic(self.batches / f"{job_id}.json", event)
            source.replace(self.batches / job_id)
        return True

    def sealed_events(self) -> list[bytes]:
        """The events of every sealed batch (orphan event files, whose seal failed, removed)."""
        events = []
        for path in sorted(self.batches.glob("*.json")):
            if (self.batches / path.stem).is_dir():
                events.append(path.read_bytes())
            else:
                path.unlink(missing_ok=True)
        return events

    def sealed(self) -> list[tuple[str, bytes]]:
        """(job id, event) of every sealed batch whose instances are still on disk."""
        return [
            (path.stem, path.read_bytes())
            for path in sorted(self.batches.glob("*.json"))
            if (self.batches / path.stem).is_dir()
        ]

    def remove_batch(self, job_id: str) -> None:
        """Delete a batch: its instances first, then its event (an orphan event is ignored)."""
        folder = self.batches / job_id
        if folder.resolve().parent != self.batches.resolve():
            raise ValueError("not a landing batch")
        with self._lock:
            shutil.rmtree(folder, ignore_errors=True)
            (self.batches / f"{job_id}.json").unlink(missing_ok=True)

    def pending(self) -> list[str]:
        """Study UIDs with instances still in ``incoming`` (to re-arm after a restart)."""
        return sorted(p.name for p in self.incoming.iterdir() if p.is_dir() and is_uid(p.name))
