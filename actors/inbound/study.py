"""The study as inbound actors see it: series of instances, headers read, pixels on demand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydicom.dataset import Dataset


@dataclass(frozen=True)
class InstanceRef:
    """One instance: its header (no Pixel Data), a loader for the whole dataset, its size and
    transfer syntax.  ``load`` may raise ``InvalidDicomError`` (undecodable or truncated)."""

    header: Dataset
    load: Callable[[], Dataset]
    size_bytes: int
    transfer_syntax: str

    @property
    def sop_uid(self) -> str:
        """The SOP Instance UID."""
        return str(self.header.get("SOPInstanceUID", ""))


@dataclass(frozen=True)
class SeriesView:
    """One series' instances in arrival order."""

    series_uid: str
    instances: tuple[InstanceRef, ...]

    @property
    def modality(self) -> str:
        """The series' modality (its first instance's), upper case; "" when absent."""
        first = self.instances[0].header if self.instances else Dataset()
        return str(first.get("Modality", "")).strip().upper()


@dataclass(frozen=True)
class StudyView:
    """A whole study as received."""

    study_uid: str
    series: tuple[SeriesView, ...]

    def first_header(self) -> Dataset:
        """The header of the study's first instance (patient and study attributes)."""
        for series in self.series:
            if series.instances:
                return series.instances[0].header
        return Dataset()

    @property
    def modalities(self) -> tuple[str, ...]:
        """The study's modalities in series order, without repeats."""
        return tuple(dict.fromkeys(s.modality for s in self.series if s.modality))
