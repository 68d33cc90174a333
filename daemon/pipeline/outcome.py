"""Aggregate instance outcomes into the job's decision and results (fail closed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from dxai.daemon.events import Reason, TaskResult
from dxai.daemon.events.models import TaskStatus
from dxai.daemon.pipeline.processing import InstanceOutcome, PixelSummary


@dataclass
class PixelTally:
    """Pixel PHI totals over one job's instances."""

    scanned: int = 0
    text_regions: int = 0
    boxes_found: int = 0
    boxes_redacted: int = 0
    held: int = 0
    failed: int = 0
    milliseconds: float = 0.0

    def add(self, summary: PixelSummary, outcome: InstanceOutcome) -> None:
        """Count one instance's pixel summary; held/failed when the pixel step said so."""
        by_pixels = outcome.reason.startswith("pixel_")
        self.scanned += summary.scanned
        self.text_regions += summary.text_regions
        self.boxes_found += summary.boxes_found
        self.boxes_redacted += summary.boxes_redacted
        self.held += by_pixels and outcome.status == "held"
        self.failed += by_pixels and outcome.status == "failed"
        self.milliseconds += summary.seconds * 1000.0


@dataclass
class StudyTally:
    """Running counts over one job's instances."""

    received: int = 0
    passed: int = 0
    held: int = 0
    failed: int = 0
    released: int = 0
    refused: int = 0
    study_uid_out: str | None = None
    failure_codes: set[str] = field(default_factory=set)
    pixels: PixelTally = field(default_factory=PixelTally)

    def add(self, outcome: InstanceOutcome) -> None:
        """Count one processed instance."""
        self.received += 1
        if outcome.pixels is not None:
            self.pixels.add(outcome.pixels, outcome)
        if outcome.status == "passed":
            self.passed += 1
            self.study_uid_out = self.study_uid_out or outcome.study_uid_out
        elif outcome.status == "held":
            self.held += 1
        else:
            self.failed += 1
        if outcome.reason and outcome.status != "passed":
            self.failure_codes.add(outcome.reason)


def decide(tally: StudyTally) -> tuple[str, str, tuple[Reason, ...]]:
    """(decision, final state, reasons): proceed only when every instance passed and landed."""
    if tally.received == 0:
        return "block", "blocked", (Reason(code="empty_study", detail="no instances fetched"),)
    if tally.passed == tally.received and tally.refused == 0:
        return "proceed", "released", (Reason(code="deid_verified", blocking=False),)
    reasons = [Reason(code=code) for code in sorted(tally.failure_codes)]
    if tally.refused:
        reasons.append(Reason(code="destination_refused", detail=f"{tally.refused} instances"))
    if tally.released == 0 and tally.held == 0:
        return "block", "blocked", tuple(reasons) or (Reason(code="deid_failed"),)
    return "hold", "held_for_review", tuple(reasons) or (Reason(code="held_for_review"),)


def deid_task(tally: StudyTally) -> TaskResult:
    """The de-identification task summary for the results event."""
    status: TaskStatus = "passed" if tally.passed == tally.received and tally.received else "held"
    if tally.passed == 0:
        status = "failed"
    return TaskResult(
        task="deid",
        status=status,
        counts={
            "received": tally.received,
            "passed": tally.passed,
            "held": tally.held,
            "failed": tally.failed,
            "released": tally.released,
        },
    )


def pixels_task(tally: StudyTally) -> TaskResult:
    """The burned-in pixel PHI task summary for the results event (no text, counts only)."""
    px = tally.pixels
    status: TaskStatus = "passed"
    if px.failed:
        status = "failed"
    elif px.held:
        status = "held"
    elif px.scanned == 0:
        status = "skipped"
    return TaskResult(
        task="pixels",
        status=status,
        counts={
            "scanned": px.scanned,
            "text_regions": px.text_regions,
            "boxes_found": px.boxes_found,
            "boxes_redacted": px.boxes_redacted,
            "held": px.held,
            "failed": px.failed,
            "ms_total": round(px.milliseconds),
        },
    )
