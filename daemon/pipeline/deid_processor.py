"""The production InstanceProcessor: header de-identification, pixel PHI, verify."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.actors.deid import Deidentifier, load_or_create_key
from dxai.actors.deid.encode import encode
from dxai.configs.errors import DxaiError
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.pipeline.pixel_step import PixelActor, PixelStep, build_pixel_actor
from dxai.daemon.pipeline.processing import InstanceOutcome, PixelSummary, ProcessorInfo


class DeidProcessor:
    """De-identify one Part 10 instance, redact burned-in PHI, verify, return the output bytes.

    Order: PHI values are read from the original header; the header is de-identified; the pixel
    step redacts the pixels of the de-identified dataset (``pixels`` None: ``deid.pixels`` is
    ``never``); the header is verified last (the pixel step marks Clean Pixel Data in it).
    Thread-safe when the pixel actor is (the CPU redactor is).
    """

    def __init__(self, deidentifier: Deidentifier, pixels: PixelStep | None = None) -> None:
        self.deid = deidentifier
        self.pixels = pixels
        self.info = ProcessorInfo(
            profile=deidentifier.profile_name,
            options=tuple(sorted(deidentifier.options)),
            pixel_mode=pixels.request if pixels else "never",
        )

    def process(self, raw: bytes) -> InstanceOutcome:
        """Return ``passed`` with the output bytes, ``held`` (PHI found) or ``failed``."""
        summary: PixelSummary | None = None
        try:
            ds = pydicom.dcmread(BytesIO(raw))
            pre = self.pixels.prepare(ds) if self.pixels else None
            result = self.deid.deidentify(ds, in_place=True)
            if self.pixels is not None and pre is not None:
                verdict = self.pixels.run(result.dataset, pre)
                summary = verdict.summary
                if verdict.status != "passed":
                    return InstanceOutcome(verdict.status, reason=verdict.reason, pixels=summary)
            check = self.deid.verify(
                result.dataset, result.phi_values, original_uids=result.original_uids
            )
            if not check.passed:
                return InstanceOutcome(status="held", reason="phi_detected", pixels=summary)
            data = encode(result.dataset)  # the bytes save_as(enforce_file_format=True) writes
        except DxaiError as exc:
            return InstanceOutcome(status="failed", reason=exc.code, pixels=summary)
        except (PydicomInvalid, EOFError, ValueError, TypeError, KeyError, AttributeError):
            return InstanceOutcome(status="failed", reason="invalid_dicom", pixels=summary)
        return InstanceOutcome(
            status="passed",
            data=data,
            study_uid_out=str(result.dataset.get("StudyInstanceUID", "")) or None,
            pixels=summary,
        )


def build_processor(
    config: DxaiConfig, pixel_actor: PixelActor | None = None, *, cpu_fallback: bool = True
) -> DeidProcessor:
    """The processor for ``config.deid`` with the configured (or generated) key.

    With ``deid.pixels`` other than ``never`` one pixel actor serves every worker thread:
    ``pixel_actor`` when given (the daemon's batched one), else the CPU OCR redactor when
    ``cpu_fallback`` (else none: instances with pixel data are held).
    """
    key_file = Path(config.deid.key_file) if config.deid.key_file else None
    key, _path, _created = load_or_create_key(key_file, Path(config.state.data_dir))
    profile = config.deid.profiles[config.deid.profile]
    deidentifier = Deidentifier(
        profile,
        key,
        profile_name=config.deid.profile,
        date_shift_max_days=config.deid.date_shift_max_days,
    )
    mode = config.deid.pixels
    if mode == "never":
        return DeidProcessor(deidentifier)
    actor = pixel_actor
    if actor is None and cpu_fallback:
        actor = build_pixel_actor(config.deid.pixel_policy)
    return DeidProcessor(deidentifier, PixelStep(actor, mode))
