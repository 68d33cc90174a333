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
import contextvars
import dataclasses
import functools
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from dxai.actors.outbound.outcome import InstanceOutcome
from dxai.actors.outbound.series import (
    InstanceProcessor,
    Member,
    planned_as_whole,
    read_member,
    run_series,
)
from dxai.actors.pixels.presence import Probe
from dxai.configs.errors import ForeignInstanceError, RepeatedInstanceError
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.base import StudySink, StudySource, counts_instances, foreign
from dxai.daemon.jobs import JobRecord, ReleaseMark
from dxai.daemon.pipeline.outcome import KeptInstance, StudyTally
from dxai.daemon.pipeline.staging import JobArea, Staged, Staging
from dxai.observability.metrics import stage_span

if TYPE_CHECKING:
    from dxai.daemon.pipeline.core import PipelineParts
    from dxai.daemon.policy.governance import JobGovernance, Routed

_T = TypeVar("_T")


async def list_study_series(
    parts: PipelineParts, job: JobRecord, source: StudySource, study_uid: str
) -> list[str]:
    """Mark the job ``fetching`` and list the study's series (in a ``fetch.list`` span): the
    first step of the outbound and the inbound work alike."""
    await parts.store.set_state(job.key, "fetching")
    with parts.sensor.span("fetch.list", {"job": job.short_key}) as span:
        series = await source.list_series(study_uid)
        span.set(series=len(series))
    return series


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

    async def run(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        """Fetch, process and (when the release rule allows) store the study; its tally."""
        parts = self.parts
        sink = parts.sink_for(event)  # refuses an unconfigured destination before any fetch
        source = parts.source_for(event)
        governance = parts.governance.for_job(event) if parts.governance is not None else None
        area = await asyncio.to_thread(self.staging.open, job.key)
        try:
            series = await list_study_series(parts, job, source, event.study_uid)
            await self._audit(job, "fetch", {"study_uid": event.study_uid, "series": len(series)})
            await parts.store.set_state(job.key, "processing")
            run = self._job_run(job.key, governance)
            tally = await self._study(source, sink, event.study_uid, series, area, run)
            await self._audit_policy(job, run, tally)
            if tally.released or tally.refused:
                data = {"instances_stored": tally.released, "instances_refused": tally.refused}
                await self._audit(job, "release", {**data, "destination": event.destination})
            return tally
        finally:
            await source.aclose()

    async def _audit(self, job: JobRecord, kind: str, data: dict[str, Any]) -> None:
        if self.parts.audit is not None:
            await self.parts.audit.append(kind, job.key, data)

    def _job_run(self, key: str, governance: JobGovernance | None) -> _JobRun:
        """One job's run: its release rule (per study whenever a rule that may apply holds
        passed studies: nothing leaves before the policy's verdict) and what it keeps for a
        review (its held instances and, released per study, the passed outputs that wait for the
        decision; nothing without a review keeper)."""
        release = self.config.release
        if governance is not None and governance.may_hold:
            release = "study"
        reviewing = self.parts.review is not None
        keep = _Keep(reviewing, reviewing and release == "study")
        return _JobRun(key, StudyTally(), keep, release, governance)

    async def _audit_policy(self, job: JobRecord, run: _JobRun, tally: StudyTally) -> None:
        """The policy's verdict: matched rule names and hold codes (no PHI, no names)."""
        policy = tally.policy
        if policy is None:
            return
        data: dict[str, Any] = {"rules": policy.rules, "holds": [r.code for r in policy.holds]}
        data["blocks"] = policy.blocks
        if run.consent is not None:
            data["consent"] = run.consent
        await self._audit(job, "policy", data)

    async def _study(
        self,
        source: StudySource,
        sink: StudySink,
        study_uid: str,
        series: Sequence[str],
        area: JobArea,
        run: _JobRun,
    ) -> StudyTally:
        """Fetch series after series while earlier ones are still processed; the policy's
        verdict; release."""
        tally = run.tally
        work: list[asyncio.Task[list[Staged]]] = []
        try:
            for index, series_uid in enumerate(series):
                with self.parts.sensor.span("fetch.series", {"series_index": index}) as span:
                    task = await self._series(source, study_uid, series_uid, area, run)
                    span.set(instances=run.fetched)
                if run.release == "series":
                    await self._release(sink, await task, run)
                else:
                    work.append(task)
            staged = [path for task in work for path in await task]
        finally:
            await _cancel_all(work)
        if run.governance is not None:
            verdict = await run.governance.conclude(tally)
            run.consent = verdict.state if verdict is not None else None
        held = tally.policy is not None and (tally.policy.holds or tally.policy.blocks)
        if staged and tally.passed == tally.received and not held:
            await self._release(sink, staged, run)
        return tally

    async def _series(
        self,
        source: StudySource,
        study_uid: str,
        series_uid: str,
        area: JobArea,
        job: _JobRun,
    ) -> asyncio.Task[list[Staged]]:
        """Stage the series' instances one by one as they arrive; return the task processing
        them (started at once per instance, or after the fetch when the series is planned as a
        whole: ``sample`` or ``presence``),
        whose result is the passed outputs' paths in order."""
        members: list[Member] = []
        routed: list[Routed | None] = []
        started: list[asyncio.Task[InstanceOutcome]] = []
        staged: dict[int, Staged] = {}
        repeated: set[int] = set()  # instances the retrieve already yielded in this job
        counted = counts_instances(source)
        tally = job.tally

        async def run(index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
            if foreign(members[index].study_uid, study_uid):
                # de-identified with this job's keys it would leave under this study
                call = _foreign_outcome  # never processed, never released
            elif index in repeated:
                call = _repeated_outcome  # the count it fills may hide a missing instance
            out, path, digest, kept = await self._timed(area, members[index], call, job.keep)
            route = routed[index]
            if job.governance is not None and route is not None:
                job.governance.note(route, out)
            if path is not None:
                staged[index] = path
                tally.output_sha256.append(digest)
            if kept is not None:
                tally.kept.append(kept)
            tally.add(out)
            self.parts.sensor.count("instances", {"component": "deid", "status": out.status})
            return out

        job.fetched = 0
        try:
            async for raw in source.iter_instances(study_uid, series_uid):
                job.fetched += 1
                if job.governance is not None:
                    await job.governance.read_header(raw)
                members.append(await asyncio.to_thread(_stage, area, raw))
                if counted and not job.first_time(members[-1].sop_uid):
                    repeated.add(len(members) - 1)
                routed.append(job.route(members[-1]))
                if not planned_as_whole(members[0], self._processor(routed[0])):
                    processor = self._processor(routed[-1])
                    call = functools.partial(processor.process, members[-1].source)
                    started.append(asyncio.create_task(run(len(members) - 1, call)))
        except BaseException:
            await _cancel_all(started)
            raise

        async def finish() -> list[Staged]:
            if started:
                await asyncio.gather(*started)
            else:
                await self._planned(members, routed, run)
            return [staged[i] for i in sorted(staged)]

        return asyncio.create_task(finish())

    def _processor(self, routed: Routed | None) -> InstanceProcessor:
        return routed.processor if routed is not None else self.parts.processor

    async def _planned(
        self,
        members: Sequence[Member],
        routed: Sequence[Routed | None],
        run: Callable[[int, Callable[[], InstanceOutcome]], Awaitable[InstanceOutcome]],
    ) -> None:
        """A series planned as a whole, per processor its instances go through (one, unless
        the policy sends some SOP classes elsewhere)."""
        groups: dict[int, list[int]] = {}
        for index in range(len(members)):
            groups.setdefault(id(self._processor(routed[index])), []).append(index)
        for indices in groups.values():
            processor = self._processor(routed[indices[0]])

            async def run_one(
                i: int, call: Callable[[], InstanceOutcome], indices: list[int] = indices
            ) -> InstanceOutcome:
                return await run(indices[i], call)

            subset = [members[i] for i in indices]
            await run_series(subset, processor, run_one, self._offload)

    async def _offload(self, call: Callable[[], Probe]) -> Probe:
        """A series' presence pass for one instance, in the CPU pool (before it is processed),
        in a ``pixels.presence`` span."""

        def probe() -> Probe:
            with stage_span("pixels.presence"):
                return call()

        return await _in_pool(self.executor, probe)

    async def _timed(
        self, area: JobArea, member: Member, call: Callable[[], InstanceOutcome], keep: _Keep
    ) -> tuple[InstanceOutcome, Staged | None, str, KeptInstance | None]:
        """One instance in the CPU pool, its time recorded (de-id and, when OCRed, pixels)."""
        started = time.perf_counter()
        process = functools.partial(_process, area, member, call, keep)
        out, path, digest, kept = await _in_pool(self.executor, process)
        elapsed = time.perf_counter() - started
        self.parts.sensor.observe("instance_s", elapsed, {"component": "deid"})
        if out.pixels is not None and out.pixels.scanned:
            self.parts.sensor.observe("instance_s", out.pixels.seconds, {"component": "pixels"})
        return out, path, digest, kept

    async def _release(self, sink: StudySink, paths: Sequence[Staged], run: _JobRun) -> None:
        """Send staged outputs to the destination; count what it took.  The sink bounds its
        requests (``stow_max_instances`` / ``stow_max_bytes``) and reads each file only while
        sending it.

        First the job store notes durably that they may land there (:class:`ReleaseMark`): a
        kill after the send and before the conclusion leaves instances at the destination,
        and the next run of the job must conclude knowing it (``partially_released``)."""
        tally = run.tally
        if paths:
            mark = ReleaseMark(tally.study_uid_out, tally.released + len(paths))
            await self.parts.store.record_releasing(run.job_key, mark)
        with self.parts.sensor.span("store", {"instances": len(paths)}) as span:
            report = await sink.store(paths)
            span.set(count=report.stored, status="refused" if report.failed_uids else "stored")
        tally.released += report.stored
        tally.refused += len(report.failed_uids)


async def _in_pool(executor: ThreadPoolExecutor, call: Callable[[], _T]) -> _T:
    """``call()`` in the CPU pool, in this task's context (its job span and log scope)."""
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(executor, context.run, call)


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


@dataclasses.dataclass
class _JobRun:
    """One run of one job: its key, tally, what it keeps, its release rule, its policy."""

    job_key: str
    tally: StudyTally
    keep: _Keep
    release: str
    governance: JobGovernance | None = None
    consent: str | None = None
    fetched: int = 0  # instances fetched of the series being fetched
    sop_uids: set[str] = dataclasses.field(default_factory=set)  # fetched so far

    def first_time(self, sop_uid: str) -> bool:
        """Whether the retrieve yields ``sop_uid`` for the first time in this run (an instance
        without one is not counted: it fails where it is read)."""
        if not sop_uid:
            return True
        if sop_uid in self.sop_uids:
            return False
        self.sop_uids.add(sop_uid)
        return True

    def route(self, member: Member) -> Routed | None:
        """The policy's processor for ``member`` (None without a policy: the default one)."""
        return self.governance.route(member) if self.governance is not None else None


def _foreign_outcome() -> InstanceOutcome:
    return InstanceOutcome(
        "failed",
        reason=ForeignInstanceError.code,
        errors=("the archive answered with an instance of another study; not processed",),
    )


def _repeated_outcome() -> InstanceOutcome:
    return InstanceOutcome(
        "failed",
        reason=RepeatedInstanceError.code,
        errors=(
            "the archive sent an instance twice in one retrieve: the instance count it fills "
            "may hide a missing one; not processed again",
        ),
    )


def _process(
    area: JobArea, member: Member, call: Callable[[], InstanceOutcome], keep: _Keep
) -> tuple[InstanceOutcome, Staged | None, str, KeptInstance | None]:
    """Process one staged instance; stage its output when it passed, with the output's SHA-256
    for the certificate; with ``keep``, what a review needs of it (blocking, worker thread).

    A held instance's output (redacted as far as possible) is staged too, and its fetched
    original stays staged (the reviewer's "before"); both go when the job's area is removed.
    """
    with stage_span("instance") as span:
        outcome = call()
        span.set(status=outcome.status, output_sop_uid=outcome.sop_uid_out or "")
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
