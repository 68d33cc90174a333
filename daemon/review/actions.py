"""Review actions queued by the CLI for the running daemon: ``<data_dir>/review/actions.sqlite``.

``dxai review approve|reject`` runs outside the daemon: it writes the action (job key, user,
the comment sealed under the review key) here and the daemon, polling every
``review.poll_interval_s``, carries it out as if the user had used the API, then records the
outcome (``done`` or ``failed`` with an error code) that the CLI waits for.  An action is marked
only after it was carried out, so one the daemon was killed in the middle of is done again at
the next start (releasing again stores the same instances, which destinations de-duplicate).
Plain sqlite3 (WAL): blocking, call from threads.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

FILE_NAME = "actions.sqlite"
ActionKind = Literal["approve", "reject", "reid"]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS actions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  job_key TEXT NOT NULL,
  action TEXT NOT NULL,
  user TEXT NOT NULL,
  comment TEXT NOT NULL DEFAULT '',
  created_at REAL NOT NULL,
  status TEXT NOT NULL DEFAULT 'pending',
  code TEXT NOT NULL DEFAULT '',
  done_at REAL,
  result TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS actions_status ON actions(status);
"""


@dataclass(frozen=True)
class QueuedAction:
    """One queued action; ``comment`` is sealed text (or empty)."""

    id: int
    job_key: str
    action: str
    user: str
    comment: str
    status: str = "pending"
    code: str = ""
    result: str = ""


class ActionQueue:
    """The queue file; every call opens its own short connection (blocking)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        con = sqlite3.connect(self.path, timeout=10.0)
        con.execute("PRAGMA journal_mode=WAL")
        con.executescript(_SCHEMA)
        columns = {row[1] for row in con.execute("PRAGMA table_info(actions)")}
        if "result" not in columns:  # a queue made before re-identification lookups
            con.execute("ALTER TABLE actions ADD COLUMN result TEXT NOT NULL DEFAULT ''")
        return con

    def enqueue(self, job_key: str, action: ActionKind, user: str, comment: str = "") -> int:
        """Queue one action; its id."""
        con = self._connect()
        try:
            with con:
                cur = con.execute(
                    "INSERT INTO actions (job_key, action, user, comment, created_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (job_key, action, user, comment, time.time()),
                )
            return int(cur.lastrowid or 0)
        finally:
            con.close()

    def pending(self) -> list[QueuedAction]:
        """Actions not carried out yet, oldest first."""
        if not self.path.exists():
            return []
        con = self._connect()
        try:
            rows = con.execute(
                "SELECT id, job_key, action, user, comment FROM actions "
                "WHERE status = 'pending' ORDER BY id"
            ).fetchall()
        finally:
            con.close()
        return [QueuedAction(*row) for row in rows]

    def finish(self, action_id: int, status: str, code: str = "", result: str = "") -> None:
        """Record how an action ended (``done`` or ``failed`` with an error code); ``result``:
        what the CLI waits for (a lookup's answer, sealed)."""
        con = self._connect()
        try:
            with con:
                con.execute(
                    "UPDATE actions SET status = ?, code = ?, done_at = ?, result = ? WHERE id = ?",
                    (status, code, time.time(), result, action_id),
                )
        finally:
            con.close()

    def clear_result(self, action_id: int) -> None:
        """Forget an action's result once the CLI read it."""
        con = self._connect()
        try:
            with con:
                con.execute("UPDATE actions SET result = '' WHERE id = ?", (action_id,))
        finally:
            con.close()

    def get(self, action_id: int) -> QueuedAction | None:
        """One action as it stands."""
        con = self._connect()
        try:
            row = con.execute(
                "SELECT id, job_key, action, user, comment, status, code, result FROM actions "
                "WHERE id = ?",
                (action_id,),
            ).fetchone()
        finally:
            con.close()
        return None if row is None else QueuedAction(*row)
