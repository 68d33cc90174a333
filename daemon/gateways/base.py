"""Gateway interfaces: where studies come from and where de-identified instances go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeAlias

from dxai.configs.errors import RetrieveIncompleteError
from dxai.observability.logging import get_logger

log = get_logger(__name__)

InstanceData: TypeAlias = bytes | Path
"""One Part 10 instance handed to a sink: its bytes, or a file on disk read only while sent."""


@dataclass(frozen=True)
class StoreReport:
    """What the destination accepted: counts plus the SOP Instance UIDs it refused."""

    stored: int
    failed_uids: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing was refused."""
        return not self.failed_uids


def check_complete(received: int, expected: int | None, what: str, series_uid: str) -> None:
    """Raise :class:`RetrieveIncompleteError` unless a series yielded all its instances.

    ``expected`` is what the archive said the series holds; None (it did not say) is logged,
    not refused: the protocol's own checks (sub-operation counts, closing delimiter) remain.
    More than expected (an instance added meanwhile) passes.
    """
    if expected is None:
        log.warning(
            "series instance count unknown at the source; completeness not checked by count",
            extra={"series_uid": series_uid, "component": what, "count": received},
        )
        return
    if received < expected:
        raise RetrieveIncompleteError(
            f"{what}: series {series_uid}: {received} of {expected} instances received"
        )


def foreign(found_study_uid: str, study_uid: str) -> bool:
    """Whether a fetched instance says it belongs to another study than the one asked for.

    A broken or hostile archive (or a mis-mapped C-GET) may answer a study's retrieve with
    another patient's instance.  An instance whose header cannot be read (no UID) has no say
    here: it fails where it is read.
    """
    return bool(found_study_uid) and found_study_uid != study_uid


class StudySource(Protocol):
    """Fetches one study, series by series, as raw Part 10 bytes per instance.

    Complete or nothing: a source raises (never returns less) when it cannot tell the whole
    study or series; :class:`~dxai.configs.errors.RetrieveIncompleteError` (retriable) when a
    series yielded fewer instances than the archive said it holds or a retrieve sub-operation
    failed.  Memory: one instance at a time, never a whole series.
    """

    async def list_series(self, study_uid: str) -> list[str]:
        """The Series Instance UIDs of the study, remembering how many instances each holds.

        Empty (or :class:`~dxai.daemon.gateways.dicomweb.StudyNotFoundError`) only when the
        archive genuinely has no match; a failed query raises.
        """
        ...

    def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """The instances of one series, each as Part 10 bytes, yielded as they arrive.

        After the last one the count is checked against the archive's (from
        :meth:`list_series`, or asked for now); a shortfall raises ``RetrieveIncompleteError``.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


def counts_instances(source: object) -> bool:
    """Whether ``source`` proves a series complete by counting what it yields against the
    archive's count (DICOMweb, DIMSE: class attribute ``counts_instances``).  Such a count is
    fooled by an instance yielded twice, which then holds the study; a folder source has no
    count to fool (two files of one instance are two copies)."""
    return bool(getattr(source, "counts_instances", False))


class StudySink(Protocol):
    """Stores Part 10 instances at a destination."""

    async def store(self, instances: Sequence[InstanceData]) -> StoreReport:
        """Store ``instances`` (bytes, or files read only while sent); report what was refused.

        Sent in bounded pieces (STOW-RS requests of limited count and size, C-STORE one by one),
        never as one body of the whole sequence.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
