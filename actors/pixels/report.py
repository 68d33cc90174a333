"""What the pixel redactor did to one instance (no PHI: boxes, counts, reasons, times)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

PixelStatus = Literal["skipped", "clean", "redacted", "held", "failed"]


@dataclass(frozen=True)
class RedactedBox:
    """One filled box (image pixels, x1/y1 exclusive) and why it was filled."""

    x0: int
    y0: int
    x1: int
    y1: int
    reason: str


@dataclass
class PixelReport:
    """Outcome of pixel PHI processing for one instance."""

    status: PixelStatus
    sop_instance_uid: str = ""
    scan_action: str = ""
    mode: str = ""
    text_regions: int = 0
    phi_regions: int = 0
    boxes: list[RedactedBox] = field(default_factory=list)
    frames: int = 0
    frames_ocr: int = 0
    held_reasons: list[str] = field(default_factory=list)
    # where PHI was still legible after the fills (for the reviewer of a hold; reason per box)
    held_boxes: list[RedactedBox] = field(default_factory=list)
    # the independent verify's engine ("" when it did not run)
    second_reader: str = ""
    transfer_syntax_in: str = ""
    transfer_syntax_out: str = ""
    seconds: float = 0.0
    error_code: str = ""
    # what failed, in words (a project error's PHI-free message): for the user, not for code
    error: str = ""

    @property
    def boxes_redacted(self) -> int:
        """Number of boxes filled (on every frame)."""
        return len(self.boxes)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = asdict(self)
        out["boxes_redacted"] = self.boxes_redacted
        return out
