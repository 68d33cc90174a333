"""Run the per-instance pipeline over a series, honouring the pixel scan policy's ``sample``.

Used by ``dxai deid`` and by the daemon alike.  Under ``deid.pixels: auto`` a series whose scan
action is ``sample`` is OCRed on ``pixel_policy.sample_count`` instances spread over the series
(by InstanceNumber) first; its other instances are OCRed only when that sample found PHI text
(or was held), else they pass through the pixel step unscanned (held when their header flags
burned-in text).  ``always`` series and ``deid.pixels: always`` OCR every instance; ``skip``
series none.  The CPU work runs through ``run`` (a thread pool in both callers).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Protocol

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dxai.actors.outbound.outcome import InstanceOutcome, ProcessorInfo
from dxai.actors.outbound.pixel_step import PixelStep

#: Runs the blocking call for member ``index`` off the event loop and returns its outcome (the
#: caller may write the output and drop ``data`` from what it returns).
Runner = Callable[[int, Callable[[], InstanceOutcome]], Awaitable[InstanceOutcome]]
_HEAD_TAGS = ["SeriesInstanceUID", "Modality", "SOPClassUID", "InstanceNumber"]


class InstanceProcessor(Protocol):
    """What the series runner needs: :class:`~dxai.actors.outbound.instance.InstancePipeline`."""

    info: ProcessorInfo
    pixels: PixelStep | None

    def process(self, source: bytes | Path, *, scan: bool = True) -> InstanceOutcome:
        """Process one instance (blocking, thread-safe, never raises for bad input)."""
        ...


@dataclass(frozen=True)
class Member:
    """One instance of a series: where its bytes are and what planning needs of its header."""

    source: bytes | Path
    series_uid: str = ""
    modality: str = ""
    sop_class: str = ""
    number: int = 0


def read_member(source: bytes | Path) -> Member:
    """A member with the planning facts of its header (blanks when the header is unreadable)."""
    head: Dataset
    try:
        fp = BytesIO(source) if isinstance(source, bytes) else source
        head = pydicom.dcmread(fp, stop_before_pixels=True, force=True, specific_tags=_HEAD_TAGS)
    except Exception:  # noqa: BLE001 - unreadable input is planned alone and fails in process()
        head = Dataset()
    return Member(
        source,
        series_uid=str(head.get("SeriesInstanceUID", "")),
        modality=str(head.get("Modality", "")).upper(),
        sop_class=str(head.get("SOPClassUID", "")),
        number=_number(head),
    )


def _number(head: Dataset) -> int:
    try:
        return int(head.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


def sampled(member: Member, pipeline: InstanceProcessor) -> bool:
    """Whether ``member``'s series is planned by sampling (else every instance is simply
    processed, and a caller may start each one as soon as it arrives)."""
    step = pipeline.pixels
    if step is None or step.request == "always":
        return False
    return step.policy.scan_action(member.modality, member.sop_class) == "sample"


def plan(
    members: Sequence[Member], pipeline: InstanceProcessor
) -> list[tuple[list[int], list[int]]]:
    """Per series: (indices OCRed first, indices OCRed only if the first found PHI text)."""
    step = pipeline.pixels
    if step is None or step.request == "always":
        return [(list(range(len(members))), [])]
    groups: dict[str, list[int]] = defaultdict(list)
    for index, member in enumerate(members):
        groups[member.series_uid or f"#{index}"].append(index)
    plans: list[tuple[list[int], list[int]]] = []
    for indices in groups.values():
        head = members[indices[0]]
        action = step.policy.scan_action(head.modality, head.sop_class)
        if action != "sample":
            plans.append((indices, []))
            continue
        ordered = sorted(indices, key=lambda i: (members[i].number, i))
        count = max(1, step.policy.sample_count)
        picks = {int(p) for p in np.linspace(0, len(ordered) - 1, count).round()}
        first = [i for n, i in enumerate(ordered) if n in picks]
        plans.append((first, [i for i in ordered if i not in first]))
    return plans


def _found_text(outcomes: Sequence[InstanceOutcome]) -> bool:
    for out in outcomes:
        px = out.pixels
        if px is not None and (px.boxes_found > 0 or px.status == "held"):
            return True
    return False


async def run_series(
    members: Sequence[Member], pipeline: InstanceProcessor, run: Runner
) -> list[InstanceOutcome]:
    """Process ``members`` (one or more series) and return one outcome each, in input order."""
    results: dict[int, InstanceOutcome] = {}

    async def batch(indices: Sequence[int], scan: bool) -> list[InstanceOutcome]:
        outs = await asyncio.gather(
            *(
                run(i, functools.partial(pipeline.process, members[i].source, scan=scan))
                for i in indices
            )
        )
        results.update(zip(indices, outs, strict=True))
        return list(outs)

    for first, rest in plan(members, pipeline):
        found = _found_text(await batch(first, True))
        if rest:
            await batch(rest, found)
    return [results[i] for i in range(len(members))]
