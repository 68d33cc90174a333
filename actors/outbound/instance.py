"""The one per-instance outbound pipeline: read, de-identify headers, pixel step, verify, encode.

``dxai deid`` (files) and the daemon (bytes fetched from an archive) both call
:meth:`InstancePipeline.process`; for the same input, key and configuration they produce the
same output bytes.  Order: the instance is read tolerantly and checked for truncation; PHI values
for the pixel step are read from the ORIGINAL header; the header is de-identified; the pixel
step redacts the pixels of the de-identified dataset; the header is verified last (the pixel
step marks Clean Pixel Data in it); the output is encoded strictly.  Blocking and thread-safe
when the pixel actor is (the CPU redactor is): run it in worker threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydicom.dataset import Dataset
from pydicom.errors import BytesLengthException

from dxai.actors.deid.encode import encode
from dxai.actors.deid.engine import Deidentifier, DeidResult
from dxai.actors.deid.fileio import MEDIA_DIRECTORY, check_complete, read_dicom, safe_reason
from dxai.actors.deid.verify import Finding
from dxai.actors.outbound.outcome import (
    HeaderSummary,
    InstanceOutcome,
    InstanceStatus,
    PixelSummary,
    ProcessorInfo,
)
from dxai.actors.outbound.pixel_step import PixelStep, PixelVerdict
from dxai.configs.errors import DxaiError
from dxai.observability.metrics import stage_span

_READ_ERRORS = (EOFError, ValueError, TypeError, KeyError, AttributeError, IndexError)
#: what a damaged input makes pydicom raise only when a lazily read element is used (while it is
#: de-identified, not when the file is opened): an element whose VR code is unknown cannot be
#: written (NotImplementedError), sequences nested past Python's recursion limit
#: (RecursionError), a value whose length is no multiple of its VR's (BytesLengthException:
#: an odd-length US element the pixel step reads).  All are the input's fault, whatever the
#: stage (found by tests/fuzz).
_MALFORMED = (NotImplementedError, RecursionError, BytesLengthException)


class ReidRecorder(Protocol):
    """The re-identification map an instance that passed is recorded in: the plain
    :class:`~dxai.actors.deid.reid.ReidentificationStore` (``dxai deid``) or the daemon's
    encrypted one.  Thread-safe; ``close`` is idempotent."""

    def record(self, result: DeidResult) -> None:
        """Store the UID map and the patient pseudonym of one de-identified instance."""
        ...

    def close(self) -> None:
        """Close the map."""
        ...


class InstancePipeline:
    """De-identify one instance, redact burned-in PHI, verify, encode (see the module doc).

    ``pixels`` None: ``deid.pixels`` is ``never``.  ``reid_store``: the re-identification map
    (``deid.reidentification_map``) records every instance that passed.
    """

    def __init__(
        self,
        deidentifier: Deidentifier,
        pixels: PixelStep | None = None,
        reid_store: ReidRecorder | None = None,
    ) -> None:
        self.deid = deidentifier
        self.pixels = pixels
        self.reid_store = reid_store
        self.info = ProcessorInfo(
            profile=deidentifier.profile_name,
            options=tuple(sorted(deidentifier.options)),
            pixel_mode=pixels.request if pixels else "never",
        )

    def close(self) -> None:
        """Close the re-identification map, if any (idempotent)."""
        if self.reid_store is not None:
            self.reid_store.close()
            self.reid_store = None

    def process(self, source: bytes | Path, *, scan: bool = True) -> InstanceOutcome:
        """Process one instance; never raises for bad input (the outcome says ``failed``).

        ``scan`` False: the series plan deferred OCR for this instance (``sample`` action);
        it is then treated as the pixel step treats an instance its policy skips.
        """
        stage = "read"
        try:
            ds = read_dicom(source)
            check_complete(ds)
            if ds.file_meta.get("MediaStorageSOPClassUID") == MEDIA_DIRECTORY:
                return InstanceOutcome(
                    "skipped",
                    reason="media_directory",
                    errors=("media directory (DICOMDIR) is not an instance",),
                )
            stage = "deidentify"
            return self._run(ds, scan)
        except DxaiError as exc:
            return InstanceOutcome("failed", reason=exc.code, errors=(f"{stage}: {exc}",))
        except _MALFORMED as exc:
            reason = (f"{stage}: {safe_reason(exc)}",)
            return InstanceOutcome("failed", reason="invalid_dicom", errors=reason)
        except _READ_ERRORS as exc:
            code = "invalid_dicom" if stage == "read" else "deid_error"
            return InstanceOutcome("failed", reason=code, errors=(f"{stage}: {safe_reason(exc)}",))
        except Exception as exc:  # noqa: BLE001 - the instance boundary: fail closed, say why
            reason = (f"{stage}: {safe_reason(exc)}",)
            return InstanceOutcome("failed", reason="internal_error", errors=reason)

    def _run(self, ds: Dataset, scan: bool) -> InstanceOutcome:
        pre = self.pixels.inspect(ds) if self.pixels else None
        with stage_span("deid.header"):
            result = self.deid.deidentify(ds, in_place=True)
        verdict: PixelVerdict | None = None
        if self.pixels is not None and pre is not None:
            with stage_span("pixels.redact") as span:
                verdict = self.pixels.run(result.dataset, pre, scan=scan)
                span.set(status=verdict.status)
            if verdict.status == "failed":
                said = (f"pixels: {(verdict.report or {}).get('error') or verdict.reason}",)
                return _outcome(result, "failed", verdict, verdict.reason, errors=said)
        with stage_span("deid.verify") as span:
            check = self.deid.verify(
                result.dataset, result.phi_values, original_uids=result.original_uids
            )
            span.set(status="passed" if check.passed else "held", count=len(check.findings))
        header = _header_summary(result, check.passed, check.elements_scanned, check.findings)
        if not check.passed:
            note = f"verify found {len(check.findings)} PHI value(s); not written"
            return _outcome(result, "held", verdict, "phi_detected", header, errors=(note,))
        data = encode(result.dataset)  # the bytes save_as(enforce_file_format=True) writes
        if verdict is not None and verdict.status == "held":
            return _outcome(result, "held", verdict, verdict.reason, header, data=data)
        if self.reid_store is not None:
            self.reid_store.record(result)
        return _outcome(result, "passed", verdict, "", header, data=data)


def _header_summary(
    result: DeidResult, passed: bool, scanned: int, findings: Sequence[Finding]
) -> HeaderSummary:
    return HeaderSummary(
        actions=dict(sorted(result.actions.items())),
        defaults=dict(result.defaults),
        verify={
            "passed": passed,
            "elements_scanned": scanned,
            "findings": [f.as_dict() for f in findings],
        },
    )


def _outcome(
    result: DeidResult,
    status: InstanceStatus,
    verdict: PixelVerdict | None,
    reason: str,
    header: HeaderSummary | None = None,
    *,
    data: bytes | None = None,
    errors: tuple[str, ...] = (),
) -> InstanceOutcome:
    ds = result.dataset
    summary: PixelSummary | None = verdict.summary if verdict else None
    return InstanceOutcome(
        status,
        data=data,
        study_uid_out=str(ds.get("StudyInstanceUID", "")) or None,
        sop_uid_out=str(ds.get("SOPInstanceUID", "")) or None,
        reason=reason,
        errors=(*tuple(result.warnings), *errors),
        pixels=summary,
        pixel_report=verdict.report if verdict else None,
        header=header,
    )
