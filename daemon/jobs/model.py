"""Job states, the idempotency key and the stored job record."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Literal, get_args

JobState = Literal[
    "received", "fetching", "processing", "held_for_review", "released", "blocked", "failed"
]
ALL_STATES: tuple[str, ...] = get_args(JobState)
ACTIVE_STATES = frozenset({"received", "fetching", "processing"})
FINAL_STATES = frozenset({"held_for_review", "released", "blocked", "failed"})

_NEXT: dict[str, frozenset[str]] = {
    "received": frozenset({"fetching", "blocked", "failed"}),
    # held_for_review from fetching: a resumed job whose earlier run already sent outputs
    # concludes ``hold`` (``partially_released``) when its fetch fails
    "fetching": frozenset({"fetching", "processing", "held_for_review", "blocked", "failed"}),
    "processing": frozenset({"fetching", "held_for_review", "released", "blocked", "failed"}),
    "held_for_review": frozenset({"released", "blocked"}),
    "released": frozenset(),
    "blocked": frozenset(),
    "failed": frozenset(),
}


def can_move(current: str, new: str) -> bool:
    """Whether a job in state ``current`` may move to ``new`` (resume may re-enter fetching)."""
    return new in _NEXT.get(current, frozenset())


def job_key(exchange_job_id: str, study_uid: str, pipeline_version: str) -> str:
    """The idempotency key: sha256 over exchange job id, study UID and pipeline version."""
    material = "\x1f".join((exchange_job_id, study_uid, pipeline_version)).encode("utf-8")
    return hashlib.sha256(material).hexdigest()


@dataclass(frozen=True)
class JobRecord:
    """One row of the job store."""

    key: str
    exchange_job_id: str
    study_uid: str
    pipeline_version: str
    state: str
    event_json: str
    traceparent: str | None
    decision_json: str | None
    decision_sent: bool
    results_json: str | None
    results_sent: bool
    reason: str | None
    attempts: int
    created_at: float
    updated_at: float
    deferred_json: str | None = None
    deferred_sent: bool = False
    released_json: str | None = None

    @property
    def short_key(self) -> str:
        """The first 16 hex digits of the key: safe to log."""
        return self.key[:16]

    @property
    def release_mark(self) -> ReleaseMark | None:
        """What an earlier run of the job may have sent to the destination (None: nothing)."""
        return ReleaseMark.from_json(self.released_json)

    @property
    def finished(self) -> bool:
        """Final state reached and every output sent: nothing left to do."""
        return self.state in FINAL_STATES and self.decision_sent and self.results_sent


@dataclass(frozen=True)
class ReleaseMark:
    """Written before a job's outputs are sent to its destination: the de-identified study UID
    and how many instances may land there.  A run killed after the send but before its
    conclusion leaves it behind; the next run's conclusion accounts for those instances."""

    study_uid_out: str | None
    instances: int

    def to_json(self) -> str:
        """The stored form."""
        return json.dumps({"study_uid_out": self.study_uid_out, "instances": self.instances})

    @classmethod
    def from_json(cls, text: str | None) -> ReleaseMark | None:
        """The mark stored as ``text`` (None: no mark)."""
        if not text:
            return None
        data = json.loads(text)
        return cls(data.get("study_uid_out"), int(data.get("instances", 0)))

    def widened(self, other: ReleaseMark) -> ReleaseMark:
        """This mark and ``other`` together: the larger count, the first known study UID."""
        return ReleaseMark(
            self.study_uid_out or other.study_uid_out, max(self.instances, other.instances)
        )


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`JobStore.claim`: the job and whether this call created it."""

    job: JobRecord
    created: bool
