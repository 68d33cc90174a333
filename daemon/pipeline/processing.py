"""Per-instance processing contract (de-identify + verify), run in worker threads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

InstanceStatus = Literal["passed", "held", "failed"]


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
class InstanceOutcome:
    """The result of processing one instance: output bytes only when it passed."""

    status: InstanceStatus
    data: bytes | None = None
    study_uid_out: str | None = None
    reason: str = ""
    pixels: PixelSummary | None = None


@dataclass(frozen=True)
class ProcessorInfo:
    """What goes into the de-identification certificate."""

    profile: str
    options: tuple[str, ...]
    pixel_mode: str


class InstanceProcessor(Protocol):
    """Blocking, thread-safe processing of one Part 10 instance (called from an executor)."""

    info: ProcessorInfo

    def process(self, raw: bytes) -> InstanceOutcome:
        """De-identify and verify ``raw``; never raise for bad input, report ``failed``."""
        ...


class UnavailableProcessor:
    """Fail-closed stand-in when no de-identifier could be built: every instance fails."""

    def __init__(self, reason: str = "deid_unavailable") -> None:
        self.reason = reason
        self.info = ProcessorInfo(profile="none", options=(), pixel_mode="never")

    def process(self, raw: bytes) -> InstanceOutcome:
        """Report failure; nothing is ever released through this processor."""
        return InstanceOutcome(status="failed", reason=self.reason)
