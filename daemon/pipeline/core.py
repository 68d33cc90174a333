"""The Pipeline: validated event -> job store -> fetch -> de-identify -> store -> outputs.

Fail closed: an instance is sent to the destination only when the processor reports it passed
(de-identified and verified); a job is ``released`` only when every instance passed.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from dxai.actors.outbound.outcome import InstanceOutcome
from dxai.actors.outbound.series import InstanceProcessor, read_member, run_series
from dxai.configs.errors import DxaiError, InvalidEventError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.events import StudyEvent, parse_study_event
from dxai.daemon.gateways.base import StudySink, StudySource
from dxai.daemon.jobs import JobRecord, JobStore
from dxai.daemon.outputs.base import Publisher
from dxai.daemon.pipeline.finish import JobFinisher
from dxai.daemon.pipeline.outcome import StudyTally
from dxai.daemon.pipeline.retry import RetryPolicy, with_retry
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import format_traceparent, new_trace

log = get_logger(__name__)
SourceFactory = Callable[[StudyEvent], StudySource]
Admission = Literal["accepted", "duplicate", "in_progress", "resumed", "dead_letter"]


@dataclass
class PipelineParts:
    """Everything a pipeline talks to (built by the daemon, faked in unit tests)."""

    store: JobStore
    source_for: SourceFactory
    sink: StudySink
    processor: InstanceProcessor
    publisher: Publisher
    sensor: Sensor
    retry: RetryPolicy


class Pipeline(AsyncLifecycle):
    """Runs jobs concurrently on the event loop, CPU work in a thread pool."""

    def __init__(self, parts: PipelineParts, config: PipelineConfig) -> None:
        self.parts = parts
        self.config = config
        self._executor = ThreadPoolExecutor(config.cpu_workers, thread_name_prefix="dxai-cpu")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._finisher = JobFinisher(
            parts.store, parts.publisher, parts.sensor, parts.processor.info, config
        )

    async def start(self) -> None:
        """Nothing to acquire: the thread pool exists from construction."""

    async def stop(self) -> None:
        """Drain in-flight jobs, then shut the thread pool down (idempotent)."""
        await self.drain()
        await asyncio.to_thread(self._executor.shutdown, True)

    @property
    def in_flight(self) -> int:
        """Jobs currently running."""
        return len(self._tasks)

    async def submit(self, raw: bytes, traceparent: str | None, origin: str) -> Admission:
        """Validate and durably record one input; start its job. Safe to ack when it returns."""
        try:
            event = parse_study_event(raw)
        except InvalidEventError as exc:
            await self.dead_letter(raw, str(exc), exc.code, origin)
            self.parts.sensor.count("errors", {"component": "intake", "error_code": exc.code})
            return "dead_letter"
        claim = await self.parts.store.claim(
            event.exchange_job_id,
            event.study_uid,
            self.config.version,
            raw.decode("utf-8"),
            traceparent or format_traceparent(new_trace()),
        )
        if claim.created:
            self._start(claim.job)
            return "accepted"
        if claim.job.key in self._tasks:
            return "in_progress"
        if claim.job.finished:
            return "duplicate"
        self._start(claim.job)
        return "resumed"

    async def dead_letter(self, raw: bytes, reason: str, code: str, origin: str) -> None:
        """Send an input that cannot become a job to the dead-letter output, with its reason."""
        await self.parts.publisher.dead_letter(raw, reason, code, origin)

    async def resume_unfinished(self) -> int:
        """Start every job the store says is unfinished (after a restart); return how many."""
        jobs = [j for j in await self.parts.store.unfinished() if j.key not in self._tasks]
        for job in jobs:
            self._start(job)
        return len(jobs)

    def _start(self, job: JobRecord) -> None:
        task = asyncio.create_task(self._guarded(job), name=f"job-{job.short_key}")
        self._tasks[job.key] = task
        task.add_done_callback(functools.partial(self._forget, job.key))

    def _forget(self, key: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)

    async def _guarded(self, job: JobRecord) -> None:
        try:
            await self.run_job(job)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a job never takes the daemon down
            code = exc.code if isinstance(exc, DxaiError) else "internal"
            self.parts.sensor.count("errors", {"component": "pipeline", "error_code": code})
            log.exception("job crashed", extra={"job": job.short_key, "error_code": code})

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait for running jobs (graceful shutdown); cancel what is left after ``timeout_s``."""
        tasks = list(self._tasks.values())
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)

    async def run_job(self, job: JobRecord) -> JobRecord:
        """Run one job to its end (or resume it), then flush its outputs."""
        if job.state in ("received", "fetching", "processing"):
            await self._finisher.run_with_deadlines(job, self._work)
        current = await self.parts.store.get(job.key)
        assert current is not None
        return await self._finisher.flush(current)

    async def _work(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        return await with_retry(self.parts.retry, lambda: self._process_study(job, event))

    async def _process_study(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        source = self.parts.source_for(event)
        store = self.parts.store
        try:
            await store.set_state(job.key, "fetching")
            series = await source.list_series(event.study_uid)
            await store.set_state(job.key, "processing")
            tally = StudyTally()
            for series_uid in series:
                outcomes = await self._process_series(source, event.study_uid, series_uid)
                await self._store_passed(outcomes, tally)
            return tally
        finally:
            await source.aclose()

    async def _process_series(
        self, source: StudySource, study_uid: str, series_uid: str
    ) -> list[InstanceOutcome]:
        """Fetch the series, then run the per-instance pipeline over it (``dxai deid``'s path)."""
        members = [
            await asyncio.to_thread(read_member, raw)
            async for raw in source.iter_instances(study_uid, series_uid)
        ]
        return await run_series(members, self.parts.processor, self._run_timed)

    async def _run_timed(self, _index: int, call: Callable[[], InstanceOutcome]) -> InstanceOutcome:
        """One instance in the CPU pool, its time recorded (de-id and, when OCRed, pixels)."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        out = await loop.run_in_executor(self._executor, call)
        self.parts.sensor.observe(
            "instance_s", time.perf_counter() - started, {"component": "deid"}
        )
        if out.pixels is not None and out.pixels.scanned:
            self.parts.sensor.observe("instance_s", out.pixels.seconds, {"component": "pixels"})
        return out

    async def _store_passed(self, outcomes: list[InstanceOutcome], tally: StudyTally) -> None:
        for outcome in outcomes:
            tally.add(outcome)
            self.parts.sensor.count("instances", {"component": "deid", "status": outcome.status})
        passed = [data for o in outcomes if (data := o.releasable) is not None]
        if passed:
            report = await self.parts.sink.store(passed)
            tally.released += report.stored
            tally.refused += len(report.failed_uids)
