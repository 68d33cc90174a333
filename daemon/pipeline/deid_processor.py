"""The production InstanceProcessor: header de-identification + verify (actors.deid)."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.actors.deid import Deidentifier, load_or_create_key
from dxai.daemon.config.root import DxaiConfig
from dxai.daemon.errors import DxaiError
from dxai.daemon.pipeline.processing import InstanceOutcome, ProcessorInfo


class DeidProcessor:
    """De-identify one Part 10 instance, verify it, and return the encoded output.

    Burned-in pixel PHI is not redacted here: with ``deid.pixels`` other than ``never``, an
    instance whose Burned In Annotation is not ``NO`` is held for review (fail closed).
    """

    def __init__(self, deidentifier: Deidentifier, pixel_mode: str) -> None:
        self.deid = deidentifier
        self.pixel_mode = pixel_mode
        self.info = ProcessorInfo(
            profile=deidentifier.profile_name,
            options=tuple(sorted(deidentifier.options)),
            pixel_mode=pixel_mode,
        )

    def _pixels_unchecked(self, ds: pydicom.Dataset) -> bool:
        if self.pixel_mode == "never" or "PixelData" not in ds:
            return False
        flag = str(ds.get("BurnedInAnnotation", "")).upper()
        return self.pixel_mode == "always" or flag != "NO"

    def process(self, raw: bytes) -> InstanceOutcome:
        """Return ``passed`` with the output bytes, ``held`` (PHI found) or ``failed``."""
        try:
            ds = pydicom.dcmread(BytesIO(raw))
            result = self.deid.deidentify(ds, in_place=True)
            check = self.deid.verify(
                result.dataset, result.phi_values, original_uids=result.original_uids
            )
            if not check.passed:
                return InstanceOutcome(status="held", reason="phi_detected")
            if self._pixels_unchecked(result.dataset):
                return InstanceOutcome(status="held", reason="pixel_phi_unchecked")
            buf = BytesIO()
            result.dataset.save_as(buf, enforce_file_format=True)
        except DxaiError as exc:
            return InstanceOutcome(status="failed", reason=exc.code)
        except (PydicomInvalid, EOFError, ValueError, TypeError, KeyError, AttributeError):
            return InstanceOutcome(status="failed", reason="invalid_dicom")
        return InstanceOutcome(
            status="passed",
            data=buf.getvalue(),
            study_uid_out=str(result.dataset.get("StudyInstanceUID", "")) or None,
        )


def build_processor(config: DxaiConfig) -> DeidProcessor:
    """The processor for ``config.deid`` with the configured (or generated) key."""
    key_file = Path(config.deid.key_file) if config.deid.key_file else None
    key, _path, _created = load_or_create_key(key_file, Path(config.state.data_dir))
    profile = config.deid.profiles[config.deid.profile]
    deidentifier = Deidentifier(
        profile,
        key,
        profile_name=config.deid.profile,
        date_shift_max_days=config.deid.date_shift_max_days,
    )
    return DeidProcessor(deidentifier, config.deid.pixels)
