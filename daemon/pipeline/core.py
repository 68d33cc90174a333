"""The Pipeline: validated event -> job store -> study work -> decision + results -> outbox.

Fail closed: an instance is sent to the destination only when the processor reports it passed
(de-identified and verified); by default (``pipeline.release: study``) nothing is sent until
every instance of the study passed.  Every job ends: whatever its work raises, the job boundary
(:meth:`Pipeline._guarded`) records a terminal state, a final decision and a dead letter; the
outbox is retried with backoff while the daemon runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from dxai.actors.outbound.series import InstanceProcessor
from dxai.configs.errors import DxaiError, InvalidEventError, PermanentError, RetriableError
from dxai.configs.lifecycle import AsyncLifecycle
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.audit import Auditor
from dxai.daemon.events import StudyEvent, parse_study_event
from dxai.daemon.gateways.base import StudySink, StudySource
from dxai.daemon.jobs import ACTIVE_STATES, JobRecord, JobStore
from dxai.daemon.outputs.base import Publisher
from dxai.daemon.pipeline.finish import JobFinisher, ReviewConclusion
from dxai.daemon.pipeline.outcome import StudyTally, decide
from dxai.daemon.pipeline.retry import RetryPolicy, with_retry
from dxai.daemon.pipeline.staging import Staging
from dxai.daemon.pipeline.study import StudyWork
from dxai.observability.logging import get_logger, job_scope
from dxai.observability.metrics import Sensor
from dxai.observability.phi_filter import code_word
from dxai.observability.tracing import (
    context_from_traceparent,
    current_span_context,
    current_traceparent,
)

if TYPE_CHECKING:
    from dxai.daemon.pipeline.inbound import InboundParts, InboundWork
    from dxai.daemon.policy.governance import Governance

log = get_logger(__name__)
SourceFactory = Callable[[StudyEvent], StudySource]
Admission = Literal["accepted", "duplicate", "in_progress", "resumed", "dead_letter"]


class ReviewKeeper(Protocol):
    """Keeps what a study concluding ``hold`` needs for its reviewer (the review store)."""

    async def keep(self, job: JobRecord, tally: StudyTally) -> None:
        """Keep ``tally.kept`` durably before the hold is recorded (replaces an earlier run's)."""
        ...


@dataclass
class PipelineParts:
    """Everything a pipeline talks to (built by the daemon, faked in unit tests).

    ``sinks`` picks the destination an event names; without it every job goes to ``sink``.
    ``staging`` None: a private temporary folder (tests); the daemon stages under its data dir.
    ``audit``: the hash-chained audit log (intake, fetch, release, decision records); None: off.
    ``review``: keeps a held study for review (:mod:`dxai.daemon.review`); None: dropped.
    ``governance``: the policy (:mod:`dxai.daemon.policy`): per instance the processor, per
    study review and consent holds; None: ``processor`` for everything, no policy holds.
    ``inbound``: the inbound workflow (``study_received`` events, :mod:`.inbound`); None: off.
    ``sink_named``: a configured destination by name (the inbound SR's ``sr_destination``).
    """

    store: JobStore
    source_for: SourceFactory
    sink: StudySink
    processor: InstanceProcessor
    publisher: Publisher
    sensor: Sensor
    retry: RetryPolicy
    sinks: Callable[[StudyEvent], StudySink] | None = None
    staging: Staging | None = None
    audit: Auditor | None = None
    review: ReviewKeeper | None = None
    governance: Governance | None = None
    inbound: InboundParts | None = None
    sink_named: Callable[[str], StudySink] | None = None

    def sink_for(self, event: StudyEvent) -> StudySink:
        """The destination of ``event``'s job."""
        return self.sinks(event) if self.sinks is not None else self.sink


class Pipeline(AsyncLifecycle):
    """Runs jobs concurrently on the event loop, CPU work in a thread pool."""

    def __init__(self, parts: PipelineParts, config: PipelineConfig) -> None:
        self.parts = parts
        self.config = config
        self._executor = ThreadPoolExecutor(config.cpu_workers, thread_name_prefix="dxai-cpu")
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._stopping = asyncio.Event()
        if parts.staging is None:
            root = Path(tempfile.mkdtemp(prefix="dxai-staging-"))
            parts.staging = Staging(root, config.staging_max_bytes, config.staging_memory_max_bytes)
        self.staging: Staging = parts.staging
        self._finisher = JobFinisher(
            parts.store, parts.publisher, parts.sensor, parts.processor.info, config, parts.audit
        )
        self._study = StudyWork(parts, config, self._executor, self.staging)
        self._inbound: InboundWork | None = None
        if parts.inbound is not None:
            from dxai.daemon.pipeline.inbound import InboundWork

            self._inbound = InboundWork(parts, parts.inbound, self.staging)

    async def start(self) -> None:
        """Remove staging areas no active job owns (left by a node killed after a conclusion:
        they hold PHI).  The thread pool exists from construction."""
        active = {job.key for job in await self.parts.store.unfinished()}
        await asyncio.to_thread(self.staging.sweep, active)

    async def stop(self) -> None:
        """Drain in-flight jobs for ``drain_grace_s``, then shut the thread pool down.

        Jobs still running after the grace period are cancelled: they stay unfinished in the
        store and are resumed at the next start.  Outputs a down broker could not take stay in
        the outbox (sent after the restart).  Idempotent.
        """
        self._stopping.set()
        running = self.in_flight
        cancelled = await self.drain(self.config.drain_grace_s)
        if running:
            log.info("jobs drained", extra={"count": running - cancelled})
        if cancelled:
            log.warning(
                "jobs cancelled at the drain deadline (resumed at restart)",
                extra={"count": cancelled},
            )
        await asyncio.to_thread(self._executor.shutdown, True)

    @property
    def in_flight(self) -> int:
        """Jobs currently running."""
        return len(self._tasks)

    async def submit(self, raw: bytes, traceparent: str | None, origin: str) -> Admission:
        """Validate and durably record one input; start its job. Safe to ack when it returns.

        Runs in an ``intake`` span: a child of the current span (the Kafka consumer's, which
        carries the producer's context), else of ``traceparent`` (webhook), else a new trace.
        The job store keeps this span's ``traceparent``: the job's spans and its output events
        continue the trace, after a restart too.
        """
        source = _source_of(origin)
        parent = None if current_span_context() else context_from_traceparent(traceparent)
        sensor = self.parts.sensor
        with sensor.span("intake", {"source": source}, parent=parent) as span:
            try:
                admission = await self._admit(raw, origin)
            except DxaiError as exc:
                sensor.count("events_consumed", {"source": source, "outcome": "error"})
                span.fail(exc.code)
                raise
            span.set(outcome=admission)
        sensor.count("events_consumed", {"source": source, "outcome": admission})
        return admission

    async def _admit(self, raw: bytes, origin: str) -> Admission:
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
            current_traceparent(),
        )
        if claim.created:
            if self.parts.audit is not None:
                data = {"study_uid": event.study_uid, "origin": origin}
                await self.parts.audit.append("intake", claim.job.key, data)
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
        sensor = self.parts.sensor
        with sensor.span("publish.dlq", {"error_code": code}):
            try:
                await self.parts.publisher.dead_letter(raw, reason, code, origin)
            except DxaiError:
                sensor.count("events_produced", {"topic": "dlq", "outcome": "error"})
                raise
        sensor.count("events_produced", {"topic": "dlq", "outcome": "ok"})
        sensor.count("dead_letters", {"reason": code_word(code)})

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
        self.parts.sensor.set_gauge("jobs_in_flight", float(len(self._tasks)))

    def _forget(self, key: str, _task: asyncio.Task[None]) -> None:
        self._tasks.pop(key, None)
        self.parts.sensor.set_gauge("jobs_in_flight", float(len(self._tasks)))

    async def _guarded(self, job: JobRecord) -> None:
        """The job boundary: every job ends with a terminal state, decision and dead letter.

        The job runs in a ``job`` span (child of its ``intake`` span, kept in the job store)
        and a log scope: every span and log line of the job carries its trace and job id.
        """
        parent = context_from_traceparent(job.traceparent)
        attrs = {"job": job.short_key, "job_key": job.key, "resumed": job.state != "received"}
        with job_scope(job.short_key), self.parts.sensor.span("job", attrs, parent=parent) as span:
            try:
                done = await self.run_job(job)
                span.set(state=done.state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the one boundary that ends a job, recorded
                span.fail(exc.code if isinstance(exc, DxaiError) else "internal_error")
                await self._end_crashed(job, exc)

    async def _end_crashed(self, job: JobRecord, exc: Exception) -> None:
        code = exc.code if isinstance(exc, DxaiError) else "internal_error"
        kind = type(exc).__name__  # a class name, never a message (messages may carry PHI)
        log.error("job crashed", extra={"job": job.short_key, "error_code": code, "reason": kind})
        try:
            current = await self.parts.store.get(job.key)
            if current is not None and current.state in ACTIVE_STATES:
                detail = f"{type(exc).__name__} while processing"
                await self._finisher.conclude_failure(current, code, detail)
            await asyncio.to_thread(self.staging.remove, job.key)
            await self._flush_until_sent(job.key)
        except DxaiError as again:  # the store or the broker itself: left for the restart
            self.parts.sensor.count("errors", {"component": "pipeline", "error_code": again.code})
            log.error("job left for the restart", extra={"job": job.short_key})

    async def drain(self, timeout_s: float | None = None) -> int:
        """Wait for running jobs (graceful shutdown); cancel what is left after ``timeout_s``.

        Returns how many jobs were cancelled.
        """
        tasks = list(self._tasks.values())
        if not tasks:
            return 0
        _done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
        return len(pending)

    async def run_job(self, job: JobRecord) -> JobRecord:
        """Run one job to its end (or resume it), then send its outputs (retried with backoff)."""
        if job.state in ACTIVE_STATES:
            await self._finisher.run_with_deadlines(job, self._work)
            await asyncio.to_thread(self.staging.remove, job.key)
        return await self._flush_until_sent(job.key)

    async def _work(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        inbound = self._inbound
        if inbound is not None and event.event_type == "study_received":
            tally = await with_retry(self.parts.retry, lambda: inbound.run(job, event))
        else:
            tally = await with_retry(self.parts.retry, lambda: self._study.run(job, event))
        if self.parts.review is not None and decide(tally)[0] == "hold":
            # kept before the hold is recorded: a crash in between re-runs the job, never
            # leaves a held study with nothing to review (the staging area goes after this)
            await self.parts.review.keep(job, tally)
        return tally

    async def conclude_review(self, key: str, review: ReviewConclusion) -> JobRecord:
        """Replace a held job's conclusion with the reviewer's (``proceed`` / ``released`` or
        ``block`` / ``blocked``), audited first, then send it (retried like every output)."""
        job = await self.parts.store.get(key)
        if job is None:
            raise PermanentError(f"unknown job {key[:16]}")
        await self._finisher.conclude_review(job, review)
        self.send_outputs(key)
        current = await self.parts.store.get(key)
        assert current is not None
        return current

    def send_outputs(self, key: str) -> None:
        """Send a finished job's unsent outputs in the background (after its running task)."""
        if self._stopping.is_set():
            return  # the outbox keeps them: sent after the restart
        running = self._tasks.get(key)
        if running is not None:  # it may have read the job before these outputs existed
            running.add_done_callback(lambda _task: self.send_outputs(key))
            return
        task = asyncio.create_task(self._send_guarded(key), name=f"send-{key[:16]}")
        self._tasks[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    async def _send_guarded(self, key: str) -> None:
        try:
            await self._flush_until_sent(key)
        except DxaiError as exc:  # left in the outbox: sent after the restart
            self.parts.sensor.count("errors", {"component": "outbox", "error_code": exc.code})

    async def _flush_until_sent(self, key: str) -> JobRecord:
        """Send the job's recorded outputs; a retriable failure is retried with backoff until
        sent or the pipeline stops (the outbox keeps them for the restart)."""
        delay = self.config.outbox_retry_initial_s
        while True:
            current = await self.parts.store.get(key)
            assert current is not None
            try:
                return await self._finisher.flush(current)
            except RetriableError as exc:
                self.parts.sensor.count("errors", {"component": "outbox", "error_code": exc.code})
                if self._stopping.is_set():
                    raise
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=delay)
            delay = min(delay * 2, self.config.outbox_retry_max_s)


def _source_of(origin: str) -> str:
    """The intake an origin names, as a metric label (Kafka origins are topic/partition/offset)."""
    if origin in ("scp", "mllp"):
        return origin
    if origin == "http":
        return "webhook"
    return "kafka" if "/" in origin else "other"
