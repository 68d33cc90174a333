"""Deadlines, the decision/results outbox and output flushing for one job."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from dxai.configs.errors import DxaiError
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.events import (
    DecisionEvent,
    DeidCertificate,
    Reason,
    ResultsEvent,
    StudyEvent,
    TaskResult,
)
from dxai.daemon.jobs import JobRecord
from dxai.daemon.pipeline.outcome import StudyTally, decide, deid_task, pixels_task
from dxai.observability.logging import get_logger
from dxai.observability.tracing import continue_trace

if TYPE_CHECKING:
    from dxai.actors.outbound.outcome import ProcessorInfo
    from dxai.daemon.jobs import JobStore
    from dxai.daemon.outputs.base import Publisher
    from dxai.observability.metrics import Sensor

log = get_logger(__name__)
Work = Callable[[JobRecord, StudyEvent], Coroutine[Any, Any, StudyTally]]


class JobFinisher:
    """Turns a job's work (or its failure) into durable outputs, then sends them."""

    def __init__(
        self,
        store: JobStore,
        publisher: Publisher,
        sensor: Sensor,
        info: ProcessorInfo,
        config: PipelineConfig,
    ) -> None:
        self.store, self.publisher, self.sensor, self.info = store, publisher, sensor, info
        self.config = config

    def _decision(self, job: JobRecord, decision: str, reasons: tuple[Reason, ...]) -> str:
        return DecisionEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            decision=decision,  # type: ignore[arg-type]
            reasons=reasons,
            partial=any(r.code == "deadline_exceeded" for r in reasons),
        ).model_dump_json()

    async def run_with_deadlines(self, job: JobRecord, work: Work) -> None:
        """Run ``work``; decide early (hold, partial) at the decision deadline."""
        event = StudyEvent.model_validate_json(job.event_json)
        task = asyncio.create_task(work(job, event))
        until_decision = job.created_at + self.config.decision_deadline_s - time.time()
        done, _ = await asyncio.wait({task}, timeout=max(0.0, until_decision))
        if not done:
            await self._early_decision(job)
        until_end = job.created_at + self.config.job_deadline_s - time.time()
        try:
            tally = await asyncio.wait_for(task, timeout=max(0.0, until_end))
        except TimeoutError:
            await self.conclude_failure(job, "deadline_exceeded", "job deadline passed")
            return
        except DxaiError as exc:
            await self.conclude_failure(job, exc.code, str(exc))
            return
        await self.conclude(job, tally)

    async def _early_decision(self, job: JobRecord) -> None:
        reason = Reason(code="deadline_exceeded", detail="de-identification not finished")
        decision_json = self._decision(job, "hold", (reason,))
        current = await self.store.record_decision(job.key, decision_json)
        await self._send_decision(current)

    async def conclude(self, job: JobRecord, tally: StudyTally) -> None:
        """Record decision and results from the tally, then move to the final state."""
        decision, state, reasons = decide(tally)
        info = self.info
        tasks: tuple[TaskResult, ...] = (deid_task(tally),)
        if info.pixel_mode != "never":
            tasks += (pixels_task(tally),)
        certificate = DeidCertificate(
            profile=info.profile,
            options=info.options,
            pixel_mode=info.pixel_mode,
            instances_deidentified=tally.passed,
            verified=tally.received > 0 and tally.passed == tally.received,
            pipeline_version=job.pipeline_version,
        )
        results = ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state=state,  # type: ignore[arg-type]
            deidentified_study_uid=tally.study_uid_out if tally.released else None,
            certificate=certificate,
            tasks=tasks,
            instances_received=tally.received,
            instances_released=tally.released,
            instances_held=tally.held + tally.failed,
        )
        await self._record(job, self._decision(job, decision, reasons), results, state)

    async def conclude_failure(self, job: JobRecord, code: str, detail: str) -> None:
        """Dead-letter the input, block the job, record a ``failed`` results event."""
        self.sensor.count("errors", {"component": "pipeline", "error_code": code})
        await self.publisher.dead_letter(
            job.event_json.encode("utf-8"), detail, code, f"job/{job.short_key}"
        )
        self.sensor.count("events_produced", {"topic": "dlq"})
        reason = Reason(code=code, detail=detail[:512])
        results = ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state="failed",
        )
        await self._record(job, self._decision(job, "block", (reason,)), results, "failed")

    async def _record(
        self, job: JobRecord, decision_json: str, results: ResultsEvent, state: str
    ) -> None:
        store = self.store
        await store.record_decision(job.key, decision_json)
        await store.record_results(job.key, results.model_dump_json())
        await store.set_state(job.key, state)
        log.info("job concluded", extra={"job": job.short_key, "state": state})
        for name, count in (await store.count_by_state()).items():
            self.sensor.set_gauge("jobs", count, {"state": name})

    async def flush(self, job: JobRecord) -> JobRecord:
        """Send whatever recorded output has not been sent yet; return the updated job."""
        job = await self._send_decision(job)
        if job.results_json is not None and not job.results_sent:
            ctx = continue_trace(job.traceparent)
            await self.publisher.results(ResultsEvent.model_validate_json(job.results_json), ctx)
            job = await self.store.mark_results_sent(job.key)
            self.sensor.count("events_produced", {"topic": "results"})
            self.sensor.observe("e2e_latency_s", time.time() - job.created_at)
        return job

    async def _send_decision(self, job: JobRecord) -> JobRecord:
        if job.decision_json is None or job.decision_sent:
            return job
        ctx = continue_trace(job.traceparent)
        await self.publisher.decision(DecisionEvent.model_validate_json(job.decision_json), ctx)
        job = await self.store.mark_decision_sent(job.key)
        self.sensor.count("events_produced", {"topic": "decisions"})
        self.sensor.observe("decision_latency_s", time.time() - job.created_at)
        return job
