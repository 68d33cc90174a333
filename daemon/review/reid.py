"""The re-identification map (``deid.reidentification_map``): encrypted at rest, read only by
an ``admin`` through the review API or CLI, every lookup audited.

On disk: ``<data_dir>/reid.sqlite``; two tables map a de-identified SOP/Study/Series UID to its
original UID and a patient pseudonym to the original Patient ID.  The looked-up key (a
de-identified value) is stored plain; the original is AES-256-GCM sealed under
``<data_dir>/keys/reid.key`` (0600, created when missing), bound to its table and key so that a
value moved to another row fails to open.  Thread-safe (the worker threads record, the review
API reads); plain sqlite3 in WAL mode.

Lookups (:class:`ReidLookup`): every one, found or not, is appended to the audit log with the
user before the answer is given; the record holds the de-identified value asked for, never the
original.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.review.crypto import Sealer, load_or_create_key
from dxai.daemon.review.errors import ReviewNotFoundError, ReviewUnavailableError

if TYPE_CHECKING:
    from dxai.daemon.audit import Auditor

FILE_NAME = "reid.sqlite"
LookupKind = Literal["uid", "patient"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS uid_map (
  new_uid TEXT PRIMARY KEY, sealed BLOB NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS patient_map (
  pseudonym TEXT PRIMARY KEY, sealed BLOB NOT NULL, created REAL NOT NULL);
"""
#: fixed table and column names per lookup kind (never taken from a request)
_TABLES = {"uid": ("uid_map", "new_uid"), "patient": ("patient_map", "pseudonym")}


class ReidNotFoundError(ReviewNotFoundError):
    """Nothing is recorded under that de-identified value."""

    code = "reid_not_found"


class ReidUnavailableError(ReviewUnavailableError):
    """The re-identification map is off (``deid.reidentification_map`` false)."""

    code = "reid_unavailable"


class _HasMaps(Protocol):
    uid_map: dict[str, str]
    patient_pseudonym: tuple[str, str] | None


def reid_key_path(config: DxaiConfig) -> Path:
    """``<data_dir>/keys/reid.key``."""
    return Path(config.state.data_dir) / "keys" / "reid.key"


class SealedReidMap:
    """The encrypted map (see the module doc); ``record`` is the pipeline's recorder."""

    def __init__(self, path: Path, key: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._sealer = Sealer(key)
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = sqlite3.connect(path, check_same_thread=False)
        with self._lock, self._db:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        path.chmod(0o600)

    def _seal(self, kind: str, key: str, original: str) -> bytes:
        return self._sealer.seal(original.encode("utf-8"), "reid", f"{kind}:{key}")

    def record(self, result: _HasMaps) -> None:
        """Store the UID map and patient pseudonym of one de-identified instance (first wins)."""
        now = time.time()
        uids = [(new, self._seal("uid", new, old), now) for old, new in result.uid_map.items()]
        with self._lock:
            db = self._require()
            with db:
                db.executemany("INSERT OR IGNORE INTO uid_map VALUES (?, ?, ?)", uids)
                if result.patient_pseudonym is not None:
                    original, pseudonym = result.patient_pseudonym
                    row = (pseudonym, self._seal("patient", pseudonym, original), now)
                    db.execute("INSERT OR IGNORE INTO patient_map VALUES (?, ?, ?)", row)

    def original(self, kind: LookupKind, key: str) -> str | None:
        """The original behind a de-identified ``uid`` or a ``patient`` pseudonym, or None
        (ReviewTamperedError when the sealed value does not open)."""
        table, column = _TABLES[kind]
        query = f"SELECT sealed FROM {table} WHERE {column} = ?"
        with self._lock:
            row = self._require().execute(query, (key,)).fetchone()
        if row is None:
            return None
        return self._sealer.open(bytes(row[0]), "reid", f"{kind}:{key}").decode("utf-8")

    def original_uid(self, new_uid: str) -> str | None:
        """The original UID behind ``new_uid``."""
        return self.original("uid", new_uid)

    def original_patient_id(self, pseudonym: str) -> str | None:
        """The original Patient ID behind ``pseudonym``."""
        return self.original("patient", pseudonym)

    def _require(self) -> sqlite3.Connection:
        if self._db is None:
            raise ReidUnavailableError("the re-identification map is closed")
        return self._db

    def close(self) -> None:
        """Close the database (idempotent)."""
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None


def open_reid_map(config: DxaiConfig) -> SealedReidMap | None:
    """The daemon's map when ``deid.reidentification_map`` is on, else None (blocking)."""
    if not config.deid.reidentification_map:
        return None
    key, _created = load_or_create_key(reid_key_path(config), "re-identification key")
    return SealedReidMap(Path(config.state.data_dir) / FILE_NAME, key)


class ReidLookup:
    """Audited lookups in the map (``reid_map`` None: the map is off)."""

    def __init__(self, reid_map: SealedReidMap | None, audit: Auditor | None) -> None:
        self.map, self.audit = reid_map, audit

    async def lookup(self, kind: LookupKind, key: str, user: str, via: str = "api") -> str:
        """The original behind ``key``; audited first as ``reid_lookup`` (actor
        ``user:<user>``, the de-identified key and whether it was found, never the original)."""
        if self.map is None:
            raise ReidUnavailableError("the re-identification map is off")
        original = await asyncio.to_thread(self.map.original, kind, key)
        if self.audit is not None:
            data = {"kind": kind, "key": key, "found": original is not None, "via": via}
            await self.audit.append("reid_lookup", "", data, actor=f"user:{user}")
        if original is None:
            raise ReidNotFoundError(f"no {kind} recorded under that value")
        return original
