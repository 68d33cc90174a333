"""Gateway interfaces: where studies come from and where de-identified instances go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class StoreReport:
    """What the destination accepted: counts plus the SOP Instance UIDs it refused."""

    stored: int
    failed_uids: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing was refused."""
        return not self.failed_uids


class StudySource(Protocol):
    """Fetches one study, series by series, as raw Part 10 bytes per instance."""

    async def list_series(self, study_uid: str) -> list[str]:
        """The Series Instance UIDs of the study (empty when the study is unknown)."""
        ...

    def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """The instances of one series, each as Part 10 bytes."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class StudySink(Protocol):
    """Stores Part 10 instances at a destination."""

    async def store(self, instances: Sequence[bytes]) -> StoreReport:
        """Store ``instances``; report what was refused."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
