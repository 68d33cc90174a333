"""The burned-in pixel PHI step of the per-instance pipeline (``dxai.actors.pixels``).

PHI values are read from the ORIGINAL header (:meth:`PixelStep.prepare`, before header
de-identification); the pixels are redacted on the de-identified dataset, whose header is then
verified.  The actor is a parameter (:class:`PixelActor`): in the daemon a :class:`PixelRedactor`
whose OCR models run through the daemon's ``InferenceClient`` (the batcher, see
:func:`dxai.actors.pixels.inference.build_batched_redactor`); standalone (``dxai deid``), the
same redactor with its own engines.  One actor is shared by the worker threads.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydicom.dataset import Dataset

from dxai.actors.deid.fileio import read_dicom
from dxai.actors.outbound.outcome import InstanceStatus, PixelSummary
from dxai.actors.pixels.presence import NO_CORNERS, Probe, probe_dataset
from dxai.actors.pixels.types import Box, ScanRequest
from dxai.configs.errors import ConfigError, DxaiError
from dxai.configs.schema.pixels import PixelPolicyConfig
from dxai.observability.logging import get_logger

if TYPE_CHECKING:
    from dxai.actors.pixels import PixelReport

log = get_logger(__name__)


class PixelActor(Protocol):
    """Redacts burned-in PHI in a dataset in place (blocking; called from worker threads)."""

    policy: PixelPolicyConfig

    def redact_dataset(
        self,
        ds: Dataset,
        phi_values: Sequence[str],
        request: ScanRequest = "auto",
        *,
        flagged: bool = False,
    ) -> PixelReport:
        """Redact ``ds`` in place; ``phi_values`` and ``flagged`` (``BurnedInAnnotation`` YES)
        come from the original header."""
        ...


@dataclass(frozen=True)
class PixelInput:
    """What the pixel step needs from the original header (taken before de-identification)."""

    phi_values: tuple[str, ...]
    flagged: bool
    #: known PHI regions (CTP rules) matched on the original header: de-identification removes
    #: attributes the rules read, so they are matched before it
    known: tuple[Box, ...] = ()


@dataclass(frozen=True)
class PixelVerdict:
    """The pixel step's outcome for one instance: its status, reason code and summary."""

    status: InstanceStatus
    reason: str
    summary: PixelSummary
    report: dict[str, Any] | None = None


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

    def __init__(
        self,
        actor: PixelActor | None,
        request: ScanRequest,
        policy: PixelPolicyConfig | None = None,
    ) -> None:
        self.actor = actor
        self.request = request
        self.policy = actor.policy if actor is not None else policy or PixelPolicyConfig()

    @staticmethod
    def prepare(ds: Dataset) -> PixelInput:
        """Read PHI values and the burned-in flag from the original (not de-identified) header."""
        from dxai.actors.pixels import phi_values

        flagged = str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES"
        return PixelInput(tuple(phi_values(ds)), flagged)

    def inspect(self, ds: Dataset) -> PixelInput:
        """:meth:`prepare` plus the known regions the actor matches on the original header.

        Known regions are an optional capability of an actor (the redactors have it).
        """
        pre = self.prepare(ds)
        match = getattr(self.actor, "known_regions", None)
        if match is None:
            return pre
        return dataclasses.replace(pre, known=tuple(match(ds)))

    def probe(self, source: bytes | Path) -> Probe:
        """The presence pass over one instance (blocking): whether it likely needs full OCR.

        Confirms candidate text lines with the actor's detector when it has one (the CPU and
        the batched redactor do).  An unreadable instance says ``unreadable``: full processing
        then reports why it fails.
        """
        try:
            ds = read_dicom(source)
        except Exception:  # noqa: BLE001 - any unreadable input is left to process() to report
            return Probe("unreadable", NO_CORNERS)
        # the redactors keep their text detector here; an actor without one: statistics alone
        detector = getattr(self.actor, "detector", None)
        return probe_dataset(ds, detector)

    def run(self, ds: Dataset, pre: PixelInput, *, scan: bool = True) -> PixelVerdict:
        """Redact ``ds`` (de-identified header) in place; say whether it may be released.

        ``scan`` False (the series plan deferred or ruled out OCR for this instance) is handled
        as an instance the policy skips: released unless its original header flags burned-in text.
        """
        skipped = PixelSummary(status="skipped")
        if not scan:
            return self._known_only(ds, pre, skipped)
        if self.actor is None:
            if "PixelData" in ds:
                return PixelVerdict("held", "pixel_actor_unavailable", skipped)
            return PixelVerdict("passed", "", skipped)
        options: dict[str, Any] = {"flagged": pre.flagged}
        if hasattr(self.actor, "known_regions"):
            options["known"] = pre.known
        report = self.actor.redact_dataset(ds, pre.phi_values, self.request, **options)
        summary, detail = _summary(report), report.as_dict()
        if report.status in ("clean", "redacted"):
            return PixelVerdict("passed", "", summary, detail)
        if report.status == "skipped":
            return _unscanned(ds, pre, summary, detail)
        if report.status == "held":
            return PixelVerdict("held", _held_reason(report.held_reasons), summary, detail)
        code = re.sub(r"[^a-z0-9_]", "_", (report.error_code or "failed").lower())[:56]
        return PixelVerdict("failed", f"pixel_{code}", summary, detail)

    def _known_only(self, ds: Dataset, pre: PixelInput, skipped: PixelSummary) -> PixelVerdict:
        """An instance the series plan does not OCR: its known regions are still blanked."""
        blank = getattr(self.actor, "redact_known_regions", None)
        if not pre.known or blank is None:
            return _unscanned(ds, pre, skipped, None)
        report: PixelReport = blank(ds, pre.known)
        if report.status == "failed":
            code = re.sub(r"[^a-z0-9_]", "_", (report.error_code or "failed").lower())[:56]
            return PixelVerdict("failed", f"pixel_{code}", _summary(report), report.as_dict())
        return _unscanned(ds, pre, _summary(report), report.as_dict())


def _unscanned(
    ds: Dataset, pre: PixelInput, summary: PixelSummary, detail: dict[str, Any] | None
) -> PixelVerdict:
    """An instance not OCRed: held when its original header says ``BurnedInAnnotation`` YES."""
    if pre.flagged and "PixelData" in ds:
        return PixelVerdict("held", "pixel_phi_unchecked", summary, detail)
    return PixelVerdict("passed", "", summary, detail)


def build_cpu_pixel_actor(policy: PixelPolicyConfig) -> PixelActor | None:
    """The CPU OCR redactor for ``policy``; None (instances get held) when its models cannot
    load; a configuration error (a known-regions script that does not parse) is raised."""
    try:
        from dxai.actors.pixels import PixelRedactor

        return PixelRedactor(policy=policy)
    except ConfigError:
        raise
    except (DxaiError, ImportError, OSError, RuntimeError) as exc:
        log.error("pixel actor unavailable", extra={"error_code": type(exc).__name__})
        return None
