"""What the per-instance pipeline returns for one instance (no PHI: codes, counts, UIDs out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

#: passed: de-identified, verified, ``data`` may leave; held: must not leave without review;
#: failed: could not be processed; skipped: not an instance (a DICOMDIR), nothing to release.
InstanceStatus = Literal["passed", "held", "failed", "skipped"]


@dataclass(frozen=True)
class PixelSummary:
    """What the pixel PHI actor did to one instance (counts and codes only, never text)."""

    status: str
    text_regions: int = 0
    boxes_found: int = 0
    boxes_redacted: int = 0
    seconds: float = 0.0

    @property
    def scanned(self) -> bool:
        """Whether OCR ran on the instance (anything but ``skipped``)."""
        return self.status != "skipped"


@dataclass(frozen=True)
class HeaderSummary:
    """What header de-identification and its verify pass did (action counts, no values)."""

    actions: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstanceOutcome:
    """The result of processing one instance.

    ``data`` (the encoded output) is set when the instance passed, and also when only the pixel
    step held it (the header is clean): a reviewer may need that output; it must never be
    released without review.  ``errors`` are PHI-free descriptions, ``reason`` one stable code.
    """

    status: InstanceStatus
    data: bytes | None = None
    study_uid_out: str | None = None
    sop_uid_out: str | None = None
    reason: str = ""
    errors: tuple[str, ...] = ()
    pixels: PixelSummary | None = None
    pixel_report: dict[str, Any] | None = None
    header: HeaderSummary | None = None

    @property
    def releasable(self) -> bytes | None:
        """The output bytes when the instance may leave, else None (fail closed)."""
        return self.data if self.status == "passed" else None


@dataclass(frozen=True)
class ProcessorInfo:
    """What goes into the de-identification certificate."""

    profile: str
    options: tuple[str, ...]
    pixel_mode: str
