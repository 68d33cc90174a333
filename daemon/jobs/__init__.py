"""Durable jobs: states, idempotency key and the SQLite job store."""

from dxai.daemon.jobs.model import (
    ACTIVE_STATES,
    ALL_STATES,
    FINAL_STATES,
    Claim,
    JobRecord,
    JobState,
    ReleaseMark,
    can_move,
    job_key,
)
from dxai.daemon.jobs.store import InvalidTransitionError, JobStore, PendingOutput, ReviewBacklog

__all__ = [
    "ACTIVE_STATES",
    "ALL_STATES",
    "FINAL_STATES",
    "Claim",
    "InvalidTransitionError",
    "JobRecord",
    "JobState",
    "JobStore",
    "PendingOutput",
    "ReleaseMark",
    "ReviewBacklog",
    "can_move",
    "job_key",
]
