"""One study's work: fetch series by series into staging, run the per-instance pipeline, release.

Memory stays bounded: each fetched instance goes to the job's staging area as it arrives (in
memory within the daemon's budget, else on disk) and is processed from there; passed outputs
are staged the same way.  Release
(``pipeline.release``): ``study`` (default) sends nothing until every instance of the study
passed, then sends the staged outputs (the sink bounds each request); ``series`` sends each
series' passed outputs once the series is done.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from dxai.actors.outbound.outcome import InstanceOutcome
from dxai.actors.outbound.series import Member, planned_as_whole, read_member, run_series
from dxai.actors.pixels.presence import Probe
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.base import StudySink, StudySource
from dxai.daemon.jobs import JobRecord
from dxai.daemon.pipeline.outcome import KeptInstance, StudyTally
from dxai.daemon.pipeline.staging import JobArea, Staged, Staging

if TYPE_CHECKING:
    from dxai.daemon.pipeline.core import PipelineParts


class StudyWork:
    """Runs the work of one job (called again on a retry: the staging area starts fresh)."""

    def __init__(
        self,
        parts: PipelineParts,
        config: PipelineConfig,
        executor: ThreadPoolExecutor,
        staging: Staging,
    ) -> None:
        self.parts, self.config, self.executor, self.staging = parts, config, executor, staging
        # what a held study keeps for review: its held instances and (released per study) the
        # passed outputs that wait for the decision; nothing without a review keeper
        reviewing = parts.review is not None
        self._keep = _Keep(reviewing, reviewing and config.release == "study")

    async def run(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        """Fetch, process and (when the release rule allows) store the study; its tally."""
        parts = self.parts
        sink = parts.sink_for(event)  # refuses an unconfigured destination before any fetch
        source = parts.source_for(event)
        area = await asyncio.to_thread(self.staging.open, job.key)
        try:
            await parts.store.set_state(job.key, "fetching")
            series = await source.list_series(event.study_uid)
            await self._audit(job, "fetch", {"study_uid": event.study_uid, "series": len(series)})
            await parts.store.set_state(job.key, "processing")
            tally = await self._study(source, sink, event.study_uid, series, area)
            if tally.released or tally.refused:
                data = {"instances_stored": tally.released, "instances_refused": tally.refused}
                await self._audit(job, "release", {**data, "destination": event.destination})
            return tally
        finally:
            await source.aclose()

    async def _audit(self, job: JobRecord, kind: str, data: dict[str, Any]) -> None:
        if self.parts.audit is not None:
            await self.parts.audit.append(kind, job.key, data)

    async def _study(
        self,
        source: StudySource,
        sink: StudySink,
        study_uid: str,
        series: Sequence[str],
        area: JobArea,
    ) -> StudyTally:
        """Fetch series after series while earlier ones are still processed; release."""
        tally = StudyTally()
        work: list[asyncio.Task[list[Staged]]] = []
        try:
            for series_uid in series:
                task = await self._series(source, study_uid, series_uid, area, tally)
                if self.config.release == "series":
                    await self._release(sink, await task, tally)
                else:
                    work.append(task)
            staged = [path for task in work for path in await task]
        finally:
            await _cancel_all(work)
        if staged and tally.passed == tally.received:
            await self._release(sink, staged, tally)
        return tally

    async def _series(
        self,
        source: StudySource,
        study_uid: str,
        series_uid: str,
        area: JobArea,
        tally: StudyTally,
    ) -> asyncio.Task[list[Staged]]:
        """Stage the series' instances one by one as they arrive; return the task processing
        them (started at once per instance, or after the fetch when the series is planned as a
        whole: ``sample`` or ``presence``),
        whose result is the passed outputs' paths in order."""
        members: list[Member] = []
        started: list[asyncio.Task[InstanceOutcome]] = []
        staged: dict[int, Staged] = {}
        processor = self.parts.processor

        async def run(index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
            out, path, digest, kept = await self._timed(area, members[index], call)
            if path is not None:
                staged[index] = path
                tally.output_sha256.append(digest)
            if kept is not None:
                tally.kept.append(kept)
            tally.add(out)
            self.parts.sensor.count("instances", {"component": "deid", "status": out.status})
            return out

        try:
            async for raw in source.iter_instances(study_uid, series_uid):
                members.append(await asyncio.to_thread(_stage, area, raw))
                if not planned_as_whole(members[0], processor):
                    call = functools.partial(processor.process, members[-1].source)
                    started.append(asyncio.create_task(run(len(members) - 1, call)))
        except BaseException:
            await _cancel_all(started)
            raise

        async def finish() -> list[Staged]:
            if started:
                await asyncio.gather(*started)
            else:
                await run_series(members, processor, run, self._offload)
            return [staged[i] for i in sorted(staged)]

        return asyncio.create_task(finish())

    async def _offload(self, call: Callable[[], Probe]) -> Probe:
        """A series' presence pass for one instance, in the CPU pool (before it is processed)."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, call)

    async def _timed(
        self, area: JobArea, member: Member, call: Callable[[], InstanceOutcome]
    ) -> tuple[InstanceOutcome, Staged | None, str, KeptInstance | None]:
        """One instance in the CPU pool, its time recorded (de-id and, when OCRed, pixels)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        process = functools.partial(_process, area, member, call, self._keep)
        out, path, digest, kept = await loop.run_in_executor(self.executor, process)
        elapsed = time.perf_counter() - started
        self.parts.sensor.observe("instance_s", elapsed, {"component": "deid"})
        if out.pixels is not None and out.pixels.scanned:
            self.parts.sensor.observe("instance_s", out.pixels.seconds, {"component": "pixels"})
        return out, path, digest, kept

    async def _release(self, sink: StudySink, paths: Sequence[Staged], tally: StudyTally) -> None:
        """Send staged outputs to the destination; count what it took.  The sink bounds its
        requests (``stow_max_instances`` / ``stow_max_bytes``) and reads each file only while
        sending it."""
        report = await sink.store(paths)
        tally.released += report.stored
        tally.refused += len(report.failed_uids)


async def _cancel_all(tasks: Sequence[asyncio.Task[Any]]) -> None:
    """Cancel ``tasks`` (finished ones are left as they are) and wait until each has ended."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def _stage(area: JobArea, raw: bytes) -> Member:
    """Write a fetched instance to the staging area; the member that points at it (blocking).

    The planning facts are read from the bytes in memory, not from the staged file: pydicom
    asks a file for its position at every element, one system call each, and every call gives
    up the GIL to the de-identification threads (a convoy that made this the costliest step).
    """
    return dataclasses.replace(read_member(raw), source=area.stage_input(raw))


@dataclasses.dataclass(frozen=True)
class _Keep:
    """What a job keeps for a possible review: held (and failed) instances, passed outputs."""

    held: bool = False
    passed: bool = False


def _process(
    area: JobArea, member: Member, call: Callable[[], InstanceOutcome], keep: _Keep
) -> tuple[InstanceOutcome, Staged | None, str, KeptInstance | None]:
    """Process one staged instance; stage its output when it passed, with the output's SHA-256
    for the certificate; with ``keep``, what a review needs of it (blocking, worker thread).

    A held instance's output (redacted as far as possible) is staged too, and its fetched
    original stays staged (the reviewer's "before"); both go when the job's area is removed.
    """
    outcome = call()
    source = member.source
    path, digest, kept = None, "", None
    if outcome.releasable is not None:
        path = area.stage_output(source, outcome.releasable)
        digest = hashlib.sha256(outcome.releasable).hexdigest()
        if keep.passed:
            kept = KeptInstance("passed", outcome.sop_uid_out, output=path)
    elif keep.held and outcome.status in ("held", "failed"):
        kept = _kept_unreleasable(area, source, outcome)
    if kept is None or kept.before is None:
        area.drop_input(source)
    return dataclasses.replace(outcome, data=None), path, digest, kept


def _kept_unreleasable(area: JobArea, source: Staged, outcome: InstanceOutcome) -> KeptInstance:
    """A held instance with its staged output and original, or a failed one's code alone."""
    report = outcome.pixel_report or {}
    pixel = {name: report.get(name) for name in ("status", "boxes", "held_boxes", "held_reasons")}
    if outcome.status != "held" or outcome.data is None:
        return KeptInstance(outcome.status, outcome.sop_uid_out, outcome.reason, pixel=pixel)
    output = area.stage_output(source, outcome.data)
    return KeptInstance("held", outcome.sop_uid_out, outcome.reason, output, source, pixel)
