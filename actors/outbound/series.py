"""Run the per-instance pipeline over a series, honouring the pixel scan policy's plan.

Used by ``dxai deid`` and by the daemon alike.  Under ``deid.pixels: auto``:

- a ``presence`` series (CT, MR, PT, NM, MG by default) gets the cheap presence pass
  (:mod:`dxai.actors.pixels.presence`) on every instance first; an instance is OCRed when the
  pass flags it (text lines confirmed by the detector, a structural cue of its header) or when
  its corners differ from the rest of the series; the others pass through the pixel step
  unscanned (held when their header flags burned-in text).  The decision depends on the
  series' instances only, never on the order they were processed in;
- a ``sample`` series is OCRed on ``pixel_policy.sample_count`` instances spread over the series
  (by InstanceNumber) first; its other instances are OCRed only when that sample found PHI text
  (or was held), else they pass through unscanned;
- ``always`` series and ``deid.pixels: always`` OCR every instance; ``skip`` series none.

The CPU work runs through ``run`` (a thread pool in both callers), the presence pass through
``offload`` (the same pool).
"""

from __future__ import annotations

import asyncio
import functools
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pydicom.dataset import Dataset

from dxai.actors.inflate import dcmread_bounded
from dxai.actors.outbound.outcome import InstanceOutcome, ProcessorInfo
from dxai.actors.outbound.pixel_step import PixelStep
from dxai.actors.pixels.presence import Probe, corner_outliers

#: Runs one instance's blocking presence pass off the event loop and returns its result.
Offload = Callable[[Callable[[], Probe]], Awaitable[Probe]]
#: Runs the blocking call for member ``index`` off the event loop and returns its outcome (the
#: caller may write the output and drop ``data`` from what it returns).
Runner = Callable[[int, Callable[[], InstanceOutcome]], Awaitable[InstanceOutcome]]
_HEAD_TAGS = [
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "SOPClassUID",
    "SOPInstanceUID",
    "InstanceNumber",
]


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
    study_uid: str = ""
    sop_class: str = ""
    number: int = 0
    sop_uid: str = ""


def read_member(source: bytes | Path) -> Member:
    """A member with the planning facts of its header (blanks when the header is unreadable).

    The values are converted inside the boundary too: pydicom reads them lazily, and a damaged
    one (a wrong VR, a length its VR cannot hold) fails only when it is first read.
    """
    try:
        head = dcmread_bounded(
            source, stop_before_pixels=True, force=True, specific_tags=_HEAD_TAGS
        )
        return Member(
            source,
            series_uid=str(head.get("SeriesInstanceUID", "")),
            modality=str(head.get("Modality", "")).upper(),
            study_uid=str(head.get("StudyInstanceUID", "")),
            sop_class=str(head.get("SOPClassUID", "")),
            number=_number(head),
            sop_uid=str(head.get("SOPInstanceUID", "")),
        )
    except Exception:  # noqa: BLE001 - unreadable input is planned alone and fails in process()
        return Member(source)


def _number(head: Dataset) -> int:
    try:
        return int(head.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


def planned_as_whole(member: Member, pipeline: InstanceProcessor) -> bool:
    """Whether ``member``'s series is planned as a whole (``sample`` or ``presence``: the
    series must be complete first), else every instance is simply processed, and a caller may
    start each one as soon as it arrives."""
    step = pipeline.pixels
    if step is None or step.request == "always":
        return False
    return step.policy.scan_action(member.modality, member.sop_class) in ("sample", "presence")


@dataclass(frozen=True)
class SeriesPlan:
    """How one series is scanned: ``first`` OCRed (or, for ``presence``, probed) first,
    ``rest`` OCRed only if the first found PHI text (``sample``)."""

    action: str
    first: list[int]
    rest: list[int]


def series_groups(members: Sequence[Member]) -> list[list[int]]:
    """Member indices grouped by SeriesInstanceUID (a member without one alone), in order."""
    groups: dict[str, list[int]] = defaultdict(list)
    for index, member in enumerate(members):
        groups[member.series_uid or f"#{index}"].append(index)
    return list(groups.values())


def plan(members: Sequence[Member], pipeline: InstanceProcessor) -> list[SeriesPlan]:
    """Per series (by SeriesInstanceUID; unreadable members alone), how it is scanned."""
    step = pipeline.pixels
    if step is None or step.request == "always":
        return [SeriesPlan("always", list(range(len(members))), [])]
    plans: list[SeriesPlan] = []
    for indices in series_groups(members):
        head = members[indices[0]]
        action = step.policy.scan_action(head.modality, head.sop_class)
        if action != "sample":
            plans.append(SeriesPlan(action, indices, []))
            continue
        ordered = sorted(indices, key=lambda i: (members[i].number, i))
        count = max(1, step.policy.sample_count)
        picks = {int(p) for p in np.linspace(0, len(ordered) - 1, count).round()}
        first = [i for n, i in enumerate(ordered) if n in picks]
        plans.append(SeriesPlan(action, first, [i for i in ordered if i not in first]))
    return plans


async def _to_thread(call: Callable[[], Probe]) -> Probe:
    return await asyncio.to_thread(call)


async def presence_scans(
    members: Sequence[Member], step: PixelStep, offload: Offload = _to_thread
) -> list[bool]:
    """Per member of one series: whether it gets full OCR (the presence pass flags it, or its
    corners differ from the series' others).  Depends on the members only, not on timing.

    Without a pixel actor (OCR models unavailable) every member is sent on, to be held.
    """
    if step.actor is None:
        return [True] * len(members)
    probes = await asyncio.gather(
        *(offload(functools.partial(step.probe, m.source)) for m in members)
    )
    odd = corner_outliers([p.corners for p in probes])
    return [p.likely or differs for p, differs in zip(probes, odd, strict=True)]


def _found_text(outcomes: Sequence[InstanceOutcome]) -> bool:
    for out in outcomes:
        px = out.pixels
        if px is not None and (px.boxes_found > 0 or px.status == "held"):
            return True
    return False


async def run_series(
    members: Sequence[Member],
    pipeline: InstanceProcessor,
    run: Runner,
    offload: Offload = _to_thread,
) -> list[InstanceOutcome]:
    """Process ``members`` (one or more series) and return one outcome each, in input order."""
    results: dict[int, InstanceOutcome] = {}

    async def batch(indices: Sequence[int], scans: Sequence[bool]) -> list[InstanceOutcome]:
        outs = await asyncio.gather(
            *(
                run(i, functools.partial(pipeline.process, members[i].source, scan=scan))
                for i, scan in zip(indices, scans, strict=True)
            )
        )
        results.update(zip(indices, outs, strict=True))
        return list(outs)

    for series in plan(members, pipeline):
        first, rest = series.first, series.rest
        if series.action == "presence" and pipeline.pixels is not None:
            step = pipeline.pixels
            await batch(first, await presence_scans([members[i] for i in first], step, offload))
            continue
        found = _found_text(await batch(first, [True] * len(first)))
        if rest:
            await batch(rest, [found] * len(rest))
    return [results[i] for i in range(len(members))]
