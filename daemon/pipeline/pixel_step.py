"""The burned-in pixel PHI step of instance processing (``dxai.actors.pixels``).

PHI values are read from the ORIGINAL header (:meth:`PixelStep.prepare`, before header
de-identification); the pixels are redacted on the de-identified dataset, whose header is then
verified.  The actor is a parameter (:class:`PixelActor`): in the daemon a :class:`PixelRedactor`
whose OCR models run through the daemon's ``InferenceClient`` (the batcher, see
:mod:`dxai.daemon.pipeline.batched_pixels`); standalone, the CPU redactor with its own ONNX
Runtime sessions.  One actor is shared by the worker threads (it keeps no per-call state).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

from pydicom.dataset import Dataset

from dxai.configs.errors import DxaiError
from dxai.daemon.pipeline.processing import InstanceStatus, PixelSummary

if TYPE_CHECKING:
    from dxai.actors.pixels import PixelReport
    from dxai.configs.schema.pixels import PixelPolicyConfig

log = logging.getLogger("dxai.pipeline")
PixelRequest = Literal["auto", "always"]


class PixelActor(Protocol):
    """Redacts burned-in PHI in a dataset in place (blocking; called from worker threads)."""

    def redact_dataset(
        self, ds: Dataset, phi_values: Sequence[str], request: PixelRequest = "auto"
    ) -> PixelReport:
        """Redact ``ds`` in place; ``phi_values`` come from the original header."""
        ...


@dataclass(frozen=True)
class PixelInput:
    """What the pixel step needs from the original header (taken before de-identification)."""

    phi_values: tuple[str, ...]
    flagged: bool


@dataclass(frozen=True)
class PixelVerdict:
    """The pixel step's outcome for one instance: its status, reason code and summary."""

    status: InstanceStatus
    reason: str
    summary: PixelSummary


def _summary(report: PixelReport) -> PixelSummary:
    return PixelSummary(
        status=report.status,
        text_regions=report.text_regions,
        boxes_found=report.phi_regions,
        boxes_redacted=report.boxes_redacted,
        seconds=report.seconds,
    )


def _held_reason(reasons: Sequence[str]) -> str:
    if "phi_legible" in reasons:
        return "pixel_phi_legible"
    return f"pixel_{reasons[0]}" if reasons else "pixel_phi_held"


class PixelStep:
    """Runs the pixel actor per instance with the ``deid.pixels`` request (auto / always).

    Fail closed: held or failed pixel work holds or fails the instance; an instance the policy
    skips is still held when its original header says ``BurnedInAnnotation`` ``YES``; without
    an actor (OCR models unavailable) every instance with pixel data is held.
    """

    def __init__(self, actor: PixelActor | None, request: PixelRequest) -> None:
        self.actor = actor
        self.request = request

    @staticmethod
    def prepare(ds: Dataset) -> PixelInput:
        """Read PHI values and the burned-in flag from the original (not de-identified) header."""
        from dxai.actors.pixels import phi_values

        flagged = str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"
        return PixelInput(tuple(phi_values(ds)), flagged)

    def run(self, ds: Dataset, pre: PixelInput) -> PixelVerdict:
        """Redact ``ds`` (de-identified header) in place; say whether it may be released."""
        if self.actor is None:
            skipped = PixelSummary(status="skipped")
            if "PixelData" in ds:
                return PixelVerdict("held", "pixel_actor_unavailable", skipped)
            return PixelVerdict("passed", "", skipped)
        report = self.actor.redact_dataset(ds, pre.phi_values, self.request)
        summary = _summary(report)
        if report.status in ("clean", "redacted"):
            return PixelVerdict("passed", "", summary)
        if report.status == "skipped":
            if pre.flagged and "PixelData" in ds:
                return PixelVerdict("held", "pixel_phi_unchecked", summary)
            return PixelVerdict("passed", "", summary)
        if report.status == "held":
            return PixelVerdict("held", _held_reason(report.held_reasons), summary)
        code = re.sub(r"[^a-z0-9_]", "_", (report.error_code or "failed").lower())[:56]
        return PixelVerdict("failed", f"pixel_{code}", summary)


def build_pixel_actor(policy: PixelPolicyConfig) -> PixelActor | None:
    """The CPU OCR redactor for ``policy``; None (instances get held) when it cannot load."""
    try:
        from dxai.actors.pixels import PixelRedactor

        return PixelRedactor(policy=policy)
    except (DxaiError, ImportError, OSError, RuntimeError) as exc:
        log.error("pixel actor unavailable", extra={"error_code": type(exc).__name__})
        return None
