"""What every inbound task returns: findings with stable codes, and one report per task.

A :class:`Finding` is PHI-free by construction: its ``message`` is built from codes, counts,
numbers and UIDs only (never a name, an identifier, a date of birth or free text of the study).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["info", "warning", "blocking"]
TaskStatus = Literal["passed", "held", "failed", "skipped", "timed_out"]
PriorityLevel = Literal["stat", "urgent", "routine"]


@dataclass(frozen=True)
class Concept:
    """A coded concept for the SR: (code value, coding scheme designator, code meaning)."""

    value: str
    scheme: str
    meaning: str


@dataclass(frozen=True)
class Finding:
    """One result of a task: a stable ``code`` (``qc.slice_gap``), how bad, what it means.

    ``series_uid`` / ``sop_uids``: the evidence it refers to (empty: the whole study).
    ``value`` + ``unit`` (UCUM): a measurement.  ``concept``: how the SR codes the finding
    (None: the SR uses a generic finding concept with ``code`` as its text).
    """

    code: str
    severity: Severity
    message: str
    task: str
    series_uid: str | None = None
    sop_uids: tuple[str, ...] = ()
    value: float | None = None
    unit: str | None = None
    concept: Concept | None = None
    score: float | None = None

    @property
    def blocking(self) -> bool:
        """True when this finding holds the study."""
        return self.severity == "blocking"


@dataclass(frozen=True)
class TaskReport:
    """One task over the study: its status, findings, PHI-free detail and counts."""

    task: str
    status: TaskStatus
    findings: tuple[Finding, ...] = ()
    detail: str = ""
    counts: dict[str, int] = field(default_factory=dict)
    blocking: bool = True

    @property
    def holds(self) -> bool:
        """True when a blocking finding holds the study."""
        return any(f.blocking for f in self.findings)


def report_of(task: str, findings: list[Finding], detail: str = "", **counts: int) -> TaskReport:
    """A task's report: ``held`` when a finding is blocking, else ``passed``."""
    status: TaskStatus = "held" if any(f.blocking for f in findings) else "passed"
    return TaskReport(task, status, tuple(findings), detail, dict(counts))
