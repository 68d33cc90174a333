"""Optional re-identification map (off by default) for the inbound return path.

Stored in the state SQLite file: new UID -> original UID, pseudonym Patient ID -> original ID.
The map is PHI: it is written only when ``deid.reidentification_map`` is true.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Protocol

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS deid_uid_map ("
    " new_uid TEXT PRIMARY KEY, original_uid TEXT NOT NULL, created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS deid_patient_map ("
    " pseudonym TEXT PRIMARY KEY, original_id TEXT NOT NULL, created REAL NOT NULL)",
)


class _HasMaps(Protocol):
    uid_map: dict[str, str]
    patient_pseudonym: tuple[str, str] | None


class ReidentificationStore:
    """A small SQLite-backed map; safe to share between threads of one process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False)
        with self._lock, self._db:
            for statement in _SCHEMA:
                self._db.execute(statement)

    def record(self, result: _HasMaps) -> None:
        """Store the UID map and the patient pseudonym of one de-identified instance."""
        now = time.time()
        uids = [(new, old, now) for old, new in result.uid_map.items()]
        with self._lock, self._db:
            self._db.executemany("INSERT OR IGNORE INTO deid_uid_map VALUES (?, ?, ?)", uids)
            if result.patient_pseudonym is not None:
                original, pseudonym = result.patient_pseudonym
                self._db.execute(
                    "INSERT OR IGNORE INTO deid_patient_map VALUES (?, ?, ?)",
                    (pseudonym, original, now),
                )

    def original_uid(self, new_uid: str) -> str | None:
        """The original UID behind ``new_uid``, if recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT original_uid FROM deid_uid_map WHERE new_uid = ?", (new_uid,)
            ).fetchone()
        return str(row[0]) if row else None

    def original_patient_id(self, pseudonym: str) -> str | None:
        """The original Patient ID behind ``pseudonym``, if recorded."""
        with self._lock:
            row = self._db.execute(
                "SELECT original_id FROM deid_patient_map WHERE pseudonym = ?", (pseudonym,)
            ).fetchone()
        return str(row[0]) if row else None

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
