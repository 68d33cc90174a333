"""Aggregate instance outcomes into the job's decision and results (fail closed)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dxai.actors.outbound.outcome import ProcessorInfo
from dxai.actors.outbound.tally import Tally
from dxai.daemon.events import Reason, TaskResult
from dxai.daemon.events.models import TaskStatus

if TYPE_CHECKING:
    from dxai.daemon.pipeline.inbound_outcome import InboundOutcome


@dataclass(frozen=True)
class KeptInstance:
    """One instance a held study keeps for its reviewer (see :mod:`dxai.daemon.review`).

    ``status`` ``passed``: ``output`` is its verified output, not yet released.  ``held``:
    ``output`` is the output redacted as far as possible (None when its header failed the
    verify) and ``before`` the fetched original the reviewer compares it with; ``pixel`` the
    pixel report's boxes and reasons (no text).  ``failed``: nothing but the code.  Bytes in
    memory or a staged file (read while the job's staging area exists).
    """

    status: str
    sop_uid_out: str | None
    reason: str = ""
    output: bytes | Path | None = None
    before: bytes | Path | None = None
    pixel: dict[str, Any] | None = None


@dataclass
class PolicyOutcome:
    """What the policy (:mod:`dxai.daemon.policy`) concluded for a study.

    ``rules``: the matched rules' names (in the order instances first matched them);
    ``holds``: reasons the study waits for review although it may have passed
    (``review_required``, ``consent_missing``, ``consent_expired``, ``consent_unavailable``);
    ``blocks``: codes that block it (``policy_no_review``); ``info``: the certificate's profile,
    options and pixel mode of the processors used; ``tasks``: extra results tasks (``consent``);
    ``review_timeout_s``: the review's time-out (None: ``review.retention_s``).
    """

    rules: list[str] = field(default_factory=list)
    holds: list[Reason] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    info: ProcessorInfo | None = None
    tasks: list[TaskResult] = field(default_factory=list)
    review_timeout_s: float | None = None


@dataclass
class StudyTally(Tally):
    """A job's tally plus what the destination did with the passed instances."""

    released: int = 0
    refused: int = 0
    # SHA-256 of every passed output, in the order they were staged (the certificate's list)
    output_sha256: list[str] = field(default_factory=list)
    # what a held study keeps for review (filled only when the pipeline has a review keeper)
    kept: list[KeptInstance] = field(default_factory=list)
    # what the policy concluded (None: no policy ran, as in the tests without one)
    policy: PolicyOutcome | None = None
    # an inbound job's reports and outputs (None: an outbound job)
    inbound: InboundOutcome | None = None


def decide(tally: StudyTally) -> tuple[str, str, tuple[Reason, ...]]:
    """(decision, final state, reasons): proceed only when every instance passed and landed.

    ``block`` when nothing of the study is usable (no instance passed or waits for review) or
    the policy blocks it, ``hold`` otherwise: a reviewer decides (by default nothing was sent:
    per-study release).  A policy hold (review required, consent) holds a study that passed.
    """
    if tally.received == 0:
        return "block", "blocked", (Reason(code="empty_study", detail="no instances fetched"),)
    if tally.inbound is not None:
        holds = tally.inbound.holds()
        if holds:
            return "hold", "held_for_review", tuple(holds)
        return "proceed", "released", tally.inbound.advisories()
    policy = tally.policy or PolicyOutcome()
    landed = tally.released == tally.passed and tally.refused == 0
    if tally.passed == tally.received and landed and not policy.holds and not policy.blocks:
        return "proceed", "released", (Reason(code="deid_verified", blocking=False),)
    reasons = [Reason(code=code) for code in sorted(tally.failure_codes)]
    if tally.refused:
        reasons.append(Reason(code="destination_refused", detail=f"{tally.refused} instances"))
    reasons += [*policy.holds, *(Reason(code=code) for code in policy.blocks)]
    if (tally.passed == 0 and tally.held == 0) or policy.blocks:
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
            "ms_total": round(px.seconds * 1000.0),
        },
    )
