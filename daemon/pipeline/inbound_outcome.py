"""What an inbound job concluded: its task reports and outputs, as decision reasons and results.

Decision (workflow ``inbound``): ``hold`` when a finding is blocking (a QC / preflight finding
that makes the study unreadable or unsendable, a blocking AI finding) or a blocking task could
not run (failed, timed out); ``proceed`` otherwise; ``block`` when nothing was received.  A
hold goes to the review queue like an outbound one (no instances are kept: the reviewer accepts
the study as it is, or rejects it).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from dxai.actors.inbound.findings import Finding, TaskReport
from dxai.daemon.events import Reason, TaskResult
from dxai.daemon.events.models import (
    FindingResult,
    InboundResults,
    PriorResult,
    RouteSuggestion,
)
from dxai.daemon.gateways.folder import is_uid

_NOT_CODE = re.compile(r"[^a-z0-9_]")


def reason_code(code: str) -> str:
    """A finding code as a decision reason code (``qc.slice_gap`` -> ``qc_slice_gap``)."""
    cleaned = _NOT_CODE.sub("_", code.lower()).strip("_") or "finding"
    return (cleaned if cleaned[0].isalpha() else f"f_{cleaned}")[:64]


@dataclass
class InboundOutcome:
    """Everything an inbound job produced (before its conclusion is recorded)."""

    reports: list[TaskReport] = field(default_factory=list)
    priority: str = "routine"
    priority_reasons: tuple[str, ...] = ()
    priors: tuple[PriorResult, ...] = ()
    routes: tuple[RouteSuggestion, ...] = ()
    summary: str = ""
    sr_uids: tuple[str, ...] = ()
    sr_stored: str = "none"
    hl7: str = "none"
    hl7_control_id: str | None = None

    def holds(self) -> list[Reason]:
        """Why the study is held: blocking findings, blocking tasks that did not complete."""
        reasons: dict[str, Reason] = {}
        for report in self.reports:
            for finding in report.findings:
                if finding.blocking:
                    code = reason_code(finding.code)
                    reasons.setdefault(code, Reason(code=code, detail=finding.message[:512]))
            if report.blocking and report.status in ("failed", "timed_out"):
                code = reason_code(f"task_{report.status}")
                detail = f"{report.task}: {report.detail}"[:512]
                reasons.setdefault(f"{code}:{report.task}", Reason(code=code, detail=detail))
        return list(reasons.values())

    def advisories(self) -> tuple[Reason, ...]:
        """The non-blocking reasons of a proceeding study: ready, and its priority."""
        return (
            Reason(code="inbound_ready", blocking=False),
            Reason(code=f"priority_{self.priority}", blocking=False),
        )

    def tasks(self) -> tuple[TaskResult, ...]:
        """One results task per report (status, blocking, PHI-free detail, counts)."""
        return tuple(
            TaskResult(
                task=reason_code(r.task),
                status=r.status,
                blocking=r.blocking,
                detail=r.detail[:512],
                counts=dict(r.counts),
            )
            for r in self.reports
        )

    def results(self) -> InboundResults:
        """The ``inbound`` block of the results event."""
        return InboundResults(
            priority=self.priority,  # type: ignore[arg-type]
            priority_reasons=tuple(r[:256] for r in self.priority_reasons),
            findings=tuple(_finding(f) for r in self.reports for f in r.findings),
            priors=self.priors,
            routes=self.routes,
            summary=self.summary[:4000],
            sr_stored=self.sr_stored,  # type: ignore[arg-type]
            hl7=self.hl7,  # type: ignore[arg-type]
            hl7_control_id=self.hl7_control_id,
        )


def _finding_code(code: str) -> str:
    cleaned = re.sub(r"[^a-z0-9_.]", "_", code.lower()) or "finding"
    return (cleaned if cleaned[0].isalpha() else f"f{cleaned}")[:64]


def _finding(finding: Finding) -> FindingResult:
    series = finding.series_uid if finding.series_uid and is_uid(finding.series_uid) else None
    return FindingResult(
        code=_finding_code(finding.code),
        task=reason_code(finding.task),
        severity=finding.severity,
        message=finding.message[:512],
        series_uid=series,
        value=finding.value,
        unit=finding.unit[:32] if finding.unit else None,
        score=finding.score,
    )
