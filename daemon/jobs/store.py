"""The durable job store (SQLite through aiosqlite, WAL, synchronous=FULL).

Every write is committed before the call returns, so a Kafka offset may be committed as soon as
:meth:`JobStore.claim` has returned.  Outputs are written here first (an outbox) and marked sent
after the broker acknowledged them; a restarted daemon resumes from :meth:`JobStore.unfinished`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite

from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.daemon.jobs.model import (
    ALL_STATES,
    Claim,
    JobRecord,
    ReleaseMark,
    can_move,
    job_key,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
  job_key TEXT PRIMARY KEY,
  exchange_job_id TEXT NOT NULL,
  study_uid TEXT NOT NULL,
  pipeline_version TEXT NOT NULL,
  state TEXT NOT NULL,
  event_json TEXT NOT NULL,
  traceparent TEXT,
  decision_json TEXT,
  decision_sent INTEGER NOT NULL DEFAULT 0,
  results_json TEXT,
  results_sent INTEGER NOT NULL DEFAULT 0,
  reason TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  created_at REAL NOT NULL,
  updated_at REAL NOT NULL,
  deferred_json TEXT,
  deferred_sent INTEGER NOT NULL DEFAULT 0,
  released_json TEXT
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
CREATE TABLE IF NOT EXISTS pending_outputs (
  job_key TEXT NOT NULL,
  kind TEXT NOT NULL,
  topic TEXT NOT NULL,
  part INTEGER NOT NULL,
  pos INTEGER NOT NULL,
  PRIMARY KEY (job_key, kind)
);
"""
_COLUMNS = (
    "job_key, exchange_job_id, study_uid, pipeline_version, state, event_json, traceparent, "
    "decision_json, decision_sent, results_json, results_sent, reason, attempts, "
    "created_at, updated_at, deferred_json, deferred_sent, released_json"
)
#: Columns added after the first schema: added to an older database when it is opened.
_ADDED_COLUMNS = (
    ("deferred_json", "TEXT"),
    ("deferred_sent", "INTEGER NOT NULL DEFAULT 0"),
    ("released_json", "TEXT"),
)


_CLEAR_PENDING = "DELETE FROM pending_outputs WHERE job_key = ? AND kind = ?"


@dataclass(frozen=True)
class PendingOutput:
    """A decision or results record written inside a transaction not yet known to be committed.

    ``kind``: ``decision`` (the final decision), ``deferred`` (the deferred decision, same
    topic: settling it must never mark the final decision sent) or ``results``.
    """

    job_key: str
    kind: str
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class ReviewBacklog:
    """Studies waiting for a reviewer: ``jobs``, their ``instances`` held, and ``oldest_s``
    the time (epoch seconds) the longest-waiting one was held (None: none waits)."""

    jobs: int
    instances: int
    oldest_s: float | None


class InvalidTransitionError(PermanentError):
    """A job was asked to move to a state its current state does not allow."""

    code = "invalid_transition"


def _record(row: Any) -> JobRecord:
    return JobRecord(
        key=row[0],
        exchange_job_id=row[1],
        study_uid=row[2],
        pipeline_version=row[3],
        state=row[4],
        event_json=row[5],
        traceparent=row[6],
        decision_json=row[7],
        decision_sent=bool(row[8]),
        results_json=row[9],
        results_sent=bool(row[10]),
        reason=row[11],
        attempts=row[12],
        created_at=row[13],
        updated_at=row[14],
        deferred_json=row[15],
        deferred_sent=bool(row[16]),
        released_json=row[17],
    )


async def _add_missing_columns(db: aiosqlite.Connection) -> None:
    """Bring a job store written by an older version up to the current columns."""
    async with db.execute("PRAGMA table_info(jobs)") as cur:
        present = {str(row[1]) for row in await cur.fetchall()}
    for name, decl in _ADDED_COLUMNS:
        if name not in present:
            await db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")


class JobStore(AsyncLifecycle):
    """Async job store; use ``async with JobStore(path) as store``."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._db: aiosqlite.Connection | None = None

    async def start(self) -> None:
        """Open the database, creating folders and schema."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            db = await aiosqlite.connect(self.path)
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=FULL")
            await db.executescript(_SCHEMA)
            await _add_missing_columns(db)
            await db.commit()
        except aiosqlite.Error as exc:
            raise ServiceUnavailableError(f"job store {self.path.name}: {exc}") from exc
        self._db = db

    async def stop(self) -> None:
        """Close the database (idempotent)."""
        if self._db is not None:
            await self._db.close()
            self._db = None

    @property
    def db(self) -> aiosqlite.Connection:
        """The open connection; raises if the store was not opened."""
        if self._db is None:
            raise ServiceUnavailableError("job store is not open")
        return self._db

    async def claim(
        self,
        exchange_job_id: str,
        study_uid: str,
        pipeline_version: str,
        event_json: str,
        traceparent: str | None = None,
    ) -> Claim:
        """Insert the job in state ``received`` unless its key is known; durable on return."""
        key = job_key(exchange_job_id, study_uid, pipeline_version)
        now = time.time()
        cur = await self.db.execute(
            "INSERT OR IGNORE INTO jobs (job_key, exchange_job_id, study_uid, pipeline_version, "
            "state, event_json, traceparent, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, 'received', ?, ?, ?, ?)",
            (key, exchange_job_id, study_uid, pipeline_version, event_json, traceparent, now, now),
        )
        created = cur.rowcount == 1
        await self.db.commit()
        job = await self.get(key)
        if job is None:  # pragma: no cover - the row was just written
            raise ServiceUnavailableError("job store lost a row it just wrote")
        return Claim(job=job, created=created)

    async def get(self, key: str) -> JobRecord | None:
        """The job with ``key``, or None."""
        async with self.db.execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_key = ?", (key,)) as c:
            row = await c.fetchone()
        return None if row is None else _record(row)

    async def _update(self, key: str, sql: str, params: tuple[Any, ...]) -> JobRecord:
        await self.db.execute(
            f"UPDATE jobs SET {sql}, updated_at = ? WHERE job_key = ?",
            (*params, time.time(), key),
        )
        await self.db.commit()
        job = await self.get(key)
        if job is None:
            raise PermanentError(f"unknown job {key[:16]}")
        return job

    async def set_state(self, key: str, state: str, reason: str | None = None) -> JobRecord:
        """Move a job to ``state`` (checked against the state machine); durable on return."""
        job = await self.get(key)
        if job is None:
            raise PermanentError(f"unknown job {key[:16]}")
        if state not in ALL_STATES or not can_move(job.state, state):
            raise InvalidTransitionError(f"job {key[:16]}: {job.state} -> {state} not allowed")
        attempts = job.attempts + (1 if state == "fetching" else 0)
        return await self._update(
            key, "state = ?, reason = COALESCE(?, reason), attempts = ?", (state, reason, attempts)
        )

    async def record_decision(self, key: str, decision_json: str) -> JobRecord:
        """Store the final decision event (outbox) unless one is stored already."""
        return await self._update(
            key, "decision_json = COALESCE(decision_json, ?)", (decision_json,)
        )

    async def record_deferred(self, key: str, deferred_json: str) -> JobRecord:
        """Store the ``deferred`` decision sent at the decision deadline (once per job)."""
        return await self._update(
            key, "deferred_json = COALESCE(deferred_json, ?)", (deferred_json,)
        )

    async def record_releasing(self, key: str, mark: ReleaseMark) -> JobRecord:
        """Durably note, before outputs are sent to the destination, that up to
        ``mark.instances`` instances of the study ``mark.study_uid_out`` may land there (a run
        that sends more raises the count; one that sends fewer keeps it)."""
        job = await self.get(key)
        if job is None:
            raise PermanentError(f"unknown job {key[:16]}")
        earlier = ReleaseMark.from_json(job.released_json)
        if earlier is not None:
            mark = earlier.widened(mark)
        return await self._update(key, "released_json = ?", (mark.to_json(),))

    async def mark_deferred_sent(self, key: str) -> JobRecord:
        """The deferred decision was sent (or is moot: the final one came first)."""
        await self.db.execute(_CLEAR_PENDING, (key, "deferred"))
        return await self._update(key, "deferred_sent = 1", ())

    async def conclude(
        self, key: str, state: str, decision_json: str, results_json: str
    ) -> JobRecord:
        """Record the final state, decision and results in one transaction (never apart).

        A job concluded before keeps its first conclusion: the decision and the results of a job
        always come from the same conclusion, so they cannot contradict each other.
        """
        job = await self.get(key)
        if job is None:
            raise PermanentError(f"unknown job {key[:16]}")
        if job.decision_json is not None and job.results_json is not None:
            return job
        if state not in ALL_STATES or not can_move(job.state, state):
            raise InvalidTransitionError(f"job {key[:16]}: {job.state} -> {state} not allowed")
        return await self._update(
            key,
            "state = ?, decision_json = ?, results_json = ?, decision_sent = 0, results_sent = 0",
            (state, decision_json, results_json),
        )

    async def reconclude(
        self, key: str, state: str, decision_json: str, results_json: str
    ) -> JobRecord:
        """Replace a ``held_for_review`` job's conclusion with the review's (``released`` or
        ``blocked``), in one transaction; both outputs are to be sent again.

        Only a held job may be concluded again, once (compare-and-set on the state: two
        reviewers deciding at once, one wins, the other gets InvalidTransitionError).  Pending
        transactional records of the held outputs are forgotten: they must not mark the new
        outputs sent after a restart.
        """
        if state not in ALL_STATES or not can_move("held_for_review", state):
            raise InvalidTransitionError(f"job {key[:16]}: held_for_review -> {state} not allowed")
        cur = await self.db.execute(
            "UPDATE jobs SET state = ?, decision_json = ?, results_json = ?, decision_sent = 0, "
            "results_sent = 0, updated_at = ? WHERE job_key = ? AND state = 'held_for_review'",
            (state, decision_json, results_json, time.time(), key),
        )
        if cur.rowcount != 1:
            await self.db.rollback()
            raise InvalidTransitionError(f"job {key[:16]}: not held for review")
        await self.db.execute("DELETE FROM pending_outputs WHERE job_key = ?", (key,))
        await self.db.commit()
        job = await self.get(key)
        assert job is not None
        return job

    async def in_state(self, state: str) -> list[JobRecord]:
        """Every job in ``state``, oldest first."""
        sql = f"SELECT {_COLUMNS} FROM jobs WHERE state = ? ORDER BY created_at"
        async with self.db.execute(sql, (state,)) as cur:
            rows = await cur.fetchall()
        return [_record(r) for r in rows]

    async def mark_decision_sent(self, key: str) -> JobRecord:
        """The broker (or results folder) acknowledged the decision."""
        await self.db.execute(_CLEAR_PENDING, (key, "decision"))
        return await self._update(key, "decision_sent = 1", ())

    async def record_results(self, key: str, results_json: str) -> JobRecord:
        """Store the results event (outbox) unless one is stored already."""
        return await self._update(key, "results_json = COALESCE(results_json, ?)", (results_json,))

    async def mark_results_sent(self, key: str) -> JobRecord:
        """The broker (or results folder) acknowledged the results."""
        await self.db.execute(_CLEAR_PENDING, (key, "results"))
        return await self._update(key, "results_sent = 1", ())

    async def record_pending(self, pending: PendingOutput) -> None:
        """Where an output was written inside a not yet committed Kafka transaction."""
        await self.db.execute(
            "INSERT OR REPLACE INTO pending_outputs VALUES (?, ?, ?, ?, ?)",
            (pending.job_key, pending.kind, pending.topic, pending.partition, pending.offset),
        )
        await self.db.commit()

    async def pending_outputs(self) -> list[PendingOutput]:
        """Outputs whose transaction may or may not have committed (checked after a restart)."""
        sql = "SELECT job_key, kind, topic, part, pos FROM pending_outputs"
        async with self.db.execute(sql) as cur:
            return [PendingOutput(*row) for row in await cur.fetchall()]

    async def clear_pending(self, key: str, kind: str) -> None:
        """Forget a pending output (its transaction was aborted: it will be sent again)."""
        await self.db.execute(_CLEAR_PENDING, (key, kind))
        await self.db.commit()

    async def unfinished(self) -> list[JobRecord]:
        """Jobs a restarted daemon must resume: still active, or with an output unsent."""
        sql = (
            f"SELECT {_COLUMNS} FROM jobs WHERE state IN ('received', 'fetching', 'processing') "
            "OR decision_sent = 0 OR results_sent = 0 ORDER BY created_at"
        )
        async with self.db.execute(sql) as cur:
            rows = await cur.fetchall()
        return [_record(r) for r in rows]

    async def reviewed_unsent(self) -> list[str]:
        """Keys of jobs concluded again by a review whose outputs are not all sent (their
        results carry a ``review`` task), oldest first."""
        sql = (
            "SELECT job_key FROM jobs WHERE state IN ('released', 'blocked') "
            "AND (decision_sent = 0 OR results_sent = 0) AND EXISTS (SELECT 1 FROM "
            "json_each(results_json, '$.tasks') WHERE json_extract(value, '$.task') = 'review') "
            "ORDER BY created_at"
        )
        rows = await self.db.execute_fetchall(sql)
        return [str(row[0]) for row in rows]

    async def review_backlog(self) -> ReviewBacklog:
        """The studies held for review: how many, their held instances (from the results
        events), and when the longest-waiting one was held (its last update)."""
        sql = (
            "SELECT COUNT(*), MIN(updated_at), "
            "COALESCE(SUM(json_extract(results_json, '$.instances_held')), 0) "
            "FROM jobs WHERE state = 'held_for_review'"
        )
        async with self.db.execute(sql) as cur:
            row = await cur.fetchone()
        assert row is not None
        oldest = None if row[1] is None else float(row[1])
        return ReviewBacklog(int(row[0]), int(row[2] or 0), oldest)

    async def count_by_state(self) -> dict[str, int]:
        """Number of jobs per state (every state present, zero when none)."""
        counts = dict.fromkeys(ALL_STATES, 0)
        # one call in the connection's thread: GROUP BY over the state index aggregates while
        # the rows are fetched, and a write on this connection between ``execute`` and
        # ``fetchall`` (another job concluding) made it read a NULL state group (found by
        # tests/fuzz: the ``None`` label then failed the conclusion's metrics)
        rows = await self.db.execute_fetchall("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        for state, n in rows:
            counts[str(state)] = int(n)
        return counts
