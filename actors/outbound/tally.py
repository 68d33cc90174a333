"""The one tally of instance outcomes: the daemon's job results and the CLI's report use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dxai.actors.outbound.outcome import InstanceOutcome, PixelSummary


@dataclass
class PixelTally:
    """Pixel PHI totals over a set of instances."""

    scanned: int = 0
    text_regions: int = 0
    boxes_found: int = 0
    boxes_redacted: int = 0
    held: int = 0
    failed: int = 0
    seconds: float = 0.0

    def add(self, summary: PixelSummary, outcome: InstanceOutcome) -> None:
        """Count one instance's pixel summary; held/failed when the pixel step said so."""
        by_pixels = outcome.reason.startswith("pixel_")
        self.scanned += summary.scanned
        self.text_regions += summary.text_regions
        self.boxes_found += summary.boxes_found
        self.boxes_redacted += summary.boxes_redacted
        self.held += by_pixels and outcome.status == "held"
        self.failed += by_pixels and outcome.status == "failed"
        self.seconds += summary.seconds

    def as_dict(self) -> dict[str, Any]:
        """Counts plus mean seconds per scanned instance (JSON-ready, no text)."""
        per = self.seconds / self.scanned if self.scanned else 0.0
        return {
            "instances_scanned": self.scanned,
            "text_regions": self.text_regions,
            "boxes_found": self.boxes_found,
            "boxes_redacted": self.boxes_redacted,
            "held": self.held,
            "failed": self.failed,
            "s_per_instance": round(per, 4),
        }


@dataclass
class Tally:
    """Running counts over a set of instance outcomes (a job's study, a CLI run)."""

    received: int = 0
    passed: int = 0
    held: int = 0
    failed: int = 0
    skipped: int = 0
    study_uid_out: str | None = None
    failure_codes: set[str] = field(default_factory=set)
    pixels: PixelTally = field(default_factory=PixelTally)

    def add(self, outcome: InstanceOutcome) -> None:
        """Count one processed instance (a skipped non-instance is counted apart)."""
        if outcome.status == "skipped":
            self.skipped += 1
            return
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

    def status_counts(self) -> dict[str, int]:
        """Instances per status, only the statuses that occurred."""
        counts = {
            "passed": self.passed,
            "held": self.held,
            "failed": self.failed,
            "skipped": self.skipped,
        }
        return {k: v for k, v in counts.items() if v}
