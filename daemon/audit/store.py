"""The audit log on disk: an append-only, hash-chained SQLite table (aiosqlite for the daemon,
plain sqlite3 for the CLI's verify and export).

Appends from one process are serialised (the next record needs the last one's hash) and each is
committed before :meth:`AuditLog.append` returns.  Triggers refuse UPDATE and DELETE, so the
daemon itself can only append; anyone editing the file by other means breaks the chain, which
``dxai audit verify`` reports with the first bad record.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol

import aiosqlite

from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.daemon.audit.chain import GENESIS, AuditRecord, ChainCheck, check_chain

FILE_NAME = "audit.sqlite"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit (
  seq INTEGER PRIMARY KEY,
  ts REAL NOT NULL,
  kind TEXT NOT NULL,
  actor TEXT NOT NULL,
  job_key TEXT NOT NULL,
  data TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""
_SELECT = "SELECT seq, ts, kind, actor, job_key, data, prev_hash, hash FROM audit ORDER BY rowid"


class Auditor(Protocol):
    """What the pipeline records to: one append per thing that happened to a job."""

    async def append(
        self, kind: str, job_key: str = "", data: Mapping[str, Any] | None = None, *,
        actor: str = "system:daemon",
    ) -> AuditRecord:  # fmt: skip
        """Append one record (committed on return)."""
        ...


class AuditLog(AsyncLifecycle):
    """The daemon's audit log under its data dir (``audit.sqlite``)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self._head: tuple[int, str] = (0, GENESIS)

    async def start(self) -> None:
        """Open (and create) the log; remember the chain's head (idempotent)."""
        if self._db is not None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(self.path)
            await db.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;" + _SCHEMA)
            async with db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1") as cur:
                row = await cur.fetchone()
        except sqlite3.Error as exc:
            raise ServiceUnavailableError(f"audit log: cannot open: {exc}") from exc
        self._db = db
        self._head = (int(row[0]), str(row[1])) if row else (0, GENESIS)

    async def stop(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            db, self._db = self._db, None
            await db.close()

    @property
    def head(self) -> tuple[int, str]:
        """Sequence number and hash of the last record (0 and the genesis hash when empty)."""
        return self._head

    async def append(
        self, kind: str, job_key: str = "", data: Mapping[str, Any] | None = None, *,
        actor: str = "system:daemon",
    ) -> AuditRecord:  # fmt: skip
        """Append one record (committed on return); UIDs, codes and counts only, no PHI."""
        if self._db is None:
            raise PermanentError("audit log: not started")
        async with self._lock:
            seq, prev = self._head
            record = AuditRecord(
                seq + 1, time.time(), kind, actor, job_key, dict(data or {}), prev
            ).sealed()
            values = (*_row(record),)
            try:
                await self._db.execute("INSERT INTO audit VALUES (?,?,?,?,?,?,?,?)", values)
                await self._db.commit()
            except sqlite3.Error as exc:
                raise ServiceUnavailableError(f"audit log: cannot append: {exc}") from exc
            self._head = (record.seq, record.hash)
        return record


def _row(record: AuditRecord) -> tuple[Any, ...]:
    data = json.dumps(dict(record.data), sort_keys=True, separators=(",", ":"))
    return (record.seq, record.ts, record.kind, record.actor, record.job_key, data,
            record.prev_hash, record.hash)  # fmt: skip


def read_records(path: Path) -> Iterator[AuditRecord]:
    """Every record of the log at ``path`` in stored order (read-only; blocking)."""
    if not path.is_file():
        raise PermanentError(f"audit log: no log at {path}")
    con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        for seq, ts, kind, actor, job_key, data, prev, digest in con.execute(_SELECT):
            yield AuditRecord(seq, ts, kind, actor, job_key, _data(data), prev, digest)
    finally:
        con.close()


def _data(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"unreadable": True}
    return value if isinstance(value, dict) else {"unreadable": True}


def verify_log(path: Path) -> ChainCheck:
    """Check the whole chain of the log at ``path`` (blocking)."""
    return check_chain(read_records(path))
