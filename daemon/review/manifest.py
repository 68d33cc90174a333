"""The review manifest: the plain, PHI-free record of one held study's review.

It holds the job key, de-identified UIDs, reason codes, boxes, statuses, who did what and when,
and the reviewers' comments sealed (free text may carry anything).  The bytes of the instances
are not here: they are sealed blobs beside it (:mod:`dxai.daemon.review.store`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ReviewStatus = Literal["pending", "approved", "rejected", "expired"]
EntryStatus = Literal["passed", "held", "failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoxModel(_Model):
    """A box in image pixels (``x1``/``y1`` exclusive) and why it is there (a code)."""

    x0: int = Field(ge=0)
    y0: int = Field(ge=0)
    x1: int = Field(ge=0)
    y1: int = Field(ge=0)
    reason: str = ""

    @classmethod
    def from_report(cls, value: Any) -> BoxModel | None:
        """A box of a pixel report (``RedactedBox.as_dict``), or None when it is not one."""
        if not isinstance(value, dict):
            return None
        try:
            return cls(**{k: value[k] for k in ("x0", "y0", "x1", "y1")}, reason=value["reason"])
        except (KeyError, ValueError, TypeError):
            return None


class ReviewerBox(BoxModel):
    """A redaction box a reviewer added (filled by the next verify)."""

    id: int = Field(ge=1)
    added_by: str
    added_at: float


class VerifyState(_Model):
    """The last verify pass a reviewer ran on an instance with its boxes filled."""

    status: str
    held_reasons: list[str] = Field(default_factory=list)
    held_boxes: list[BoxModel] = Field(default_factory=list)
    by: str
    at: float


class KeptEntry(_Model):
    """One kept instance: ``n`` names its blobs; ``releasable`` when it has an output."""

    n: int = Field(ge=1)
    status: EntryStatus
    sop_uid_out: str | None = None
    reason: str = ""
    releasable: bool = False
    pixel_status: str = ""
    boxes: list[BoxModel] = Field(default_factory=list)
    held_boxes: list[BoxModel] = Field(default_factory=list)
    held_reasons: list[str] = Field(default_factory=list)
    review_boxes: list[ReviewerBox] = Field(default_factory=list)
    verify: VerifyState | None = None
    stale: bool = Field(default=False, description="boxes changed since the last verify")

    @property
    def reviewable(self) -> bool:
        """Held with an output and its original: shown to the reviewer, boxes editable."""
        return self.status == "held" and self.releasable


class CommentEntry(_Model):
    """A reviewer's comment: who, when, and the text sealed under the review key."""

    user: str
    at: float
    sealed: str


class Manifest(_Model):
    """Everything about one held study's review but the sealed bytes."""

    version: Literal[1] = 1
    job_key: str = Field(pattern=r"^[0-9a-f]{64}$")
    kept_at: float
    status: ReviewStatus = "pending"
    decided_at: float | None = None
    decided_by: str | None = None
    study_uid_out: str | None = None
    reasons: list[str] = Field(default_factory=list)
    instances: list[KeptEntry] = Field(default_factory=list)
    comments: list[CommentEntry] = Field(default_factory=list)
    next_box_id: int = 1
    blobs_dropped: bool = False
    # the policy's review time-out (None: review.retention_s): undecided past it, it expires
    timeout_s: float | None = None

    def entry(self, sop_uid_out: str) -> KeptEntry | None:
        """The kept instance with this de-identified SOP Instance UID."""
        for entry in self.instances:
            if entry.sop_uid_out == sop_uid_out:
                return entry
        return None

    @property
    def held(self) -> list[KeptEntry]:
        """The instances that are not simply passed (held or failed)."""
        return [e for e in self.instances if e.status != "passed"]
