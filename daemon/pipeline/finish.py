"""Deadlines, the decision state machine, the decision/results outbox and flushing, per job.

The decision events of a job (docs/events.md):

- at most one ``deferred`` decision, when the decision deadline passes with work still running
  (it says nothing about the outcome; the final decision follows);
- exactly one final decision, ``proceed`` / ``hold`` / ``block``, recorded in the same store
  transaction as the results event, so the two never contradict each other: ``proceed`` with
  ``released``, ``hold`` with ``held_for_review``, ``block`` with ``blocked`` or ``failed``;
- a job whose outputs were already sent to the destination before its conclusion (a run killed
  between the send and the conclusion: the job store's release mark says so) concludes
  ``proceed`` when this run releases the study again, else ``hold`` with reason
  ``partially_released`` (never ``block``: the destination holds the study), its results
  counting those instances.

Deadlines count from the start of this daemon's work on the job (monotonic): a restart does not
spend them, and a resumed job whose deferred decision was already sent does not send another.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dxai.configs.errors import DxaiError, RetrieveIncompleteError
from dxai.configs.schema.root import PipelineConfig
from dxai.daemon.events import (
    DecisionEvent,
    DeidCertificate,
    Reason,
    ResultsEvent,
    StudyEvent,
    TaskResult,
)
from dxai.daemon.jobs import JobRecord, ReleaseMark
from dxai.daemon.pipeline.outcome import StudyTally, decide, deid_task, pixels_task
from dxai.observability.logging import get_logger
from dxai.observability.phi_filter import code_word
from dxai.observability.tracing import Parent, context_from_traceparent, current_span_context

if TYPE_CHECKING:
    from dxai.actors.outbound.outcome import ProcessorInfo
    from dxai.daemon.audit import Auditor
    from dxai.daemon.jobs import JobStore
    from dxai.daemon.outputs.base import Publisher
    from dxai.observability.metrics import Sensor

log = get_logger(__name__)
Work = Callable[[JobRecord, StudyEvent], Coroutine[Any, Any, StudyTally]]


@dataclass(frozen=True)
class ReviewConclusion:
    """A reviewer's decision on a held job (or the review's expiry) and what its release did.

    ``approved``: ``proceed`` / ``released`` (``released`` instances stored, their SHA-256),
    else ``block`` / ``blocked``.  ``reason``: the decision's reason code (``review_approved``,
    ``review_rejected``, ``review_expired``); ``actor``: who decided (``user:<name>``), named by
    the audit record of the decision; ``counts``: the ``review`` task's counts.
    """

    approved: bool
    reason: str
    actor: str
    released: int = 0
    instances_sha256: tuple[str, ...] = ()
    study_uid_out: str | None = None
    verified: bool = False
    counts: Mapping[str, int] = field(default_factory=dict)


class JobFinisher:
    """Turns a job's work (or its failure) into durable outputs, then sends them."""

    def __init__(
        self,
        store: JobStore,
        publisher: Publisher,
        sensor: Sensor,
        info: ProcessorInfo,
        config: PipelineConfig,
        audit: Auditor | None = None,
    ) -> None:
        self.store, self.publisher, self.sensor, self.info = store, publisher, sensor, info
        self.config, self.audit = config, audit

    def _decision(
        self, job: JobRecord, decision: str, reasons: tuple[Reason, ...], partial: bool = False
    ) -> str:
        return DecisionEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            decision=decision,  # type: ignore[arg-type]
            reasons=reasons,
            partial=partial,
        ).model_dump_json()

    async def run_with_deadlines(self, job: JobRecord, work: Work) -> None:
        """Run ``work``; send ``deferred`` at the decision deadline; conclude, whatever happens.

        A project error concludes the job (``hold`` for a retrieve that stayed incomplete after
        its retries, ``block`` otherwise) with a dead letter; anything else propagates to the
        pipeline's job boundary, which concludes the job the same way.
        """
        event = StudyEvent.model_validate_json(job.event_json)
        started = time.monotonic()
        task = asyncio.create_task(work(job, event))
        if job.deferred_json is None:
            done, _ = await asyncio.wait({task}, timeout=self.config.decision_deadline_s)
            if not done:
                await self._defer(job)
        remaining = self.config.job_deadline_s - (time.monotonic() - started)
        try:
            tally = await asyncio.wait_for(task, timeout=max(0.0, remaining))
        except TimeoutError:
            await self.conclude_failure(job, "deadline_exceeded", "job deadline passed")
            return
        except RetrieveIncompleteError as exc:
            await self.conclude_failure(job, exc.code, str(exc), hold=True)
            return
        except DxaiError as exc:
            await self.conclude_failure(job, exc.code, str(exc))
            return
        await self.conclude(job, tally)

    async def _defer(self, job: JobRecord) -> None:
        reason = Reason(
            code="deadline_exceeded",
            detail="work continues past the decision deadline; the final decision follows",
            blocking=False,
        )
        deferred = self._decision(job, "deferred", (reason,), partial=True)
        current = await self.store.record_deferred(job.key, deferred)
        await self._send_decision(current)

    async def conclude(self, job: JobRecord, tally: StudyTally) -> None:
        """Record decision and results from the tally, then move to the final state."""
        decision, state, reasons = decide(tally)
        if tally.inbound is not None:
            results = self._inbound_results(job, tally, state)
            await self._record(job, self._decision(job, decision, reasons), results, state)
            return
        released = await self._released(job, tally, decision)
        if released.mark is not None:  # an earlier run's outputs are at the destination
            decision, state = "hold", "held_for_review"
            reasons = (*reasons, _partially_released(released.mark))
        policy = tally.policy
        info = policy.info if policy is not None and policy.info is not None else self.info
        tasks: tuple[TaskResult, ...] = (deid_task(tally),)
        if info.pixel_mode != "never":
            tasks += (pixels_task(tally),)
        if policy is not None:
            tasks += tuple(policy.tasks)
        certificate = DeidCertificate(
            profile=info.profile,
            options=info.options,
            pixel_mode=info.pixel_mode,
            instances_deidentified=tally.passed,
            verified=tally.received > 0 and tally.passed == tally.received,
            pipeline_version=job.pipeline_version,
            instances_sha256=tuple(sorted(tally.output_sha256)) if tally.released else (),
            policy_rules=tuple(policy.rules) if policy is not None else (),
        )
        results = ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state=state,  # type: ignore[arg-type]
            deidentified_study_uid=released.study_uid_out,
            certificate=certificate,
            tasks=tasks,
            instances_received=tally.received,
            instances_released=released.instances,
            instances_held=tally.held + tally.failed,
        )
        await self._record(job, self._decision(job, decision, reasons), results, state)

    async def _released(self, job: JobRecord, tally: StudyTally, decision: str) -> _Released:
        """What the destination holds of the study: this run's release, or, when the job does
        not conclude ``proceed`` and an earlier run of it sent more outputs than this one did
        (killed between the send and its conclusion, :class:`ReleaseMark`), at most those."""
        uid = tally.study_uid_out if tally.released else None
        mark = await self._earlier_release(job) if decision != "proceed" else None
        if mark is None or mark.instances <= tally.released + tally.refused:
            return _Released(tally.released, uid)
        count = max(tally.released, mark.instances)
        return _Released(count, uid or mark.study_uid_out or tally.study_uid_out, mark)

    async def _earlier_release(self, job: JobRecord) -> ReleaseMark | None:
        """The job's release mark as stored now (``job`` was read before its work ran)."""
        current = await self.store.get(job.key)
        return current.release_mark if current is not None else None

    @staticmethod
    def _inbound_results(job: JobRecord, tally: StudyTally, state: str) -> ResultsEvent:
        """An inbound job's results: its tasks, the SR's UIDs, the ``inbound`` block (no
        de-identification certificate: nothing left the network)."""
        inbound = tally.inbound
        assert inbound is not None
        return ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state=state,  # type: ignore[arg-type]
            tasks=inbound.tasks(),
            sr_uids=inbound.sr_uids,
            inbound=inbound.results(),
            instances_received=tally.received,
        )

    async def conclude_failure(
        self, job: JobRecord, code: str, detail: str, *, hold: bool = False
    ) -> None:
        """Conclude a job whose work failed: dead letter with ``code``, then ``block`` (state
        ``failed``) or, with ``hold``, ``hold`` (state ``held_for_review``); nothing released."""
        self.sensor.count("errors", {"component": "pipeline", "error_code": code})
        with self.sensor.span("publish.dlq", {"job": job.short_key, "error_code": code}):
            await self.publisher.dead_letter(
                job.event_json.encode("utf-8"), detail, code, f"job/{job.short_key}"
            )
        self.sensor.count("events_produced", {"topic": "dlq", "outcome": "ok"})
        self.sensor.count("dead_letters", {"reason": code_word(code)})
        reasons: tuple[Reason, ...] = (Reason(code=code, detail=detail[:512]),)
        mark = await self._earlier_release(job)
        if mark is not None:  # an earlier run's outputs are at the destination: a reviewer
            hold, reasons = True, (*reasons, _partially_released(mark))
        state = "held_for_review" if hold else "failed"
        results = ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state=state,  # type: ignore[arg-type]
            deidentified_study_uid=mark.study_uid_out if mark is not None else None,
            instances_released=mark.instances if mark is not None else 0,
        )
        decision = self._decision(job, "hold" if hold else "block", reasons)
        await self._record(job, decision, results, state)

    async def conclude_review(self, job: JobRecord, review: ReviewConclusion) -> None:
        """Replace the held conclusion of ``job`` with the reviewer's; the decision and the
        results again come from this one conclusion (see :meth:`JobStore.reconclude`)."""
        held = self._held_results(job)
        approved = review.approved
        reasons = (Reason(code=review.reason, blocking=not approved),)
        task = TaskResult(
            task="review", status="passed" if approved else "failed", counts=dict(review.counts)
        )
        certificate = self._reviewed_certificate(job, held, review)
        results = held.model_copy(
            update={
                "state": "released" if approved else "blocked",
                "deidentified_study_uid": review.study_uid_out if approved else None,
                "certificate": certificate,
                "tasks": (*held.tasks, task),
                "instances_released": review.released if approved else 0,
                "instances_held": 0 if approved else held.instances_held,
            }
        )
        decision = self._decision(job, "proceed" if approved else "block", reasons)
        state = str(results.state)
        await self._record(job, decision, results, state, review=True, actor=review.actor)

    def _reviewed_certificate(
        self, job: JobRecord, held: ResultsEvent, review: ReviewConclusion
    ) -> DeidCertificate | None:
        """The certificate after a review (None for an inbound study: nothing was
        de-identified, the reviewer accepted or rejected it as received)."""
        if held.inbound is not None:
            return None
        approved = review.approved
        certificate = held.certificate or self._certificate(job, review.released, review.verified)
        return certificate.model_copy(
            update={
                "instances_sha256": tuple(sorted(review.instances_sha256)) if approved else (),
                "instances_deidentified": review.released if approved else 0,
                "verified": approved and review.verified,
            }
        )

    def _held_results(self, job: JobRecord) -> ResultsEvent:
        if job.results_json is not None:
            return ResultsEvent.model_validate_json(job.results_json)
        return ResultsEvent(
            exchange_job_id=job.exchange_job_id,
            study_uid=job.study_uid,
            job_key=job.key,
            pipeline_version=job.pipeline_version,
            state="held_for_review",
        )

    def _certificate(self, job: JobRecord, released: int, verified: bool) -> DeidCertificate:
        info = self.info
        return DeidCertificate(
            profile=info.profile,
            options=info.options,
            pixel_mode=info.pixel_mode,
            instances_deidentified=released,
            verified=verified,
            pipeline_version=job.pipeline_version,
        )

    async def _record(
        self,
        job: JobRecord,
        decision_json: str,
        results: ResultsEvent,
        state: str,
        *,
        review: bool = False,
        actor: str = "system:daemon",
    ) -> None:
        store = self.store
        if self.audit is not None:  # first: a conclusion the log cannot record is not made
            record = await self.audit.append(
                "decision", job.key, _audit_data(decision_json, results), actor=actor
            )
            if results.certificate is not None:
                position = {"audit_seq": record.seq, "audit_prev_hash": record.prev_hash}
                certificate = results.certificate.model_copy(update=position)
                results = results.model_copy(update={"certificate": certificate})
        if review:
            await store.reconclude(job.key, state, decision_json, results.model_dump_json())
        else:
            await store.conclude(job.key, state, decision_json, results.model_dump_json())
        log.info("job concluded", extra={"job": job.short_key, "state": state})
        self._count_conclusion(decision_json)
        for name, count in (await store.count_by_state()).items():
            self.sensor.set_gauge("jobs", count, {"state": name})

    def _count_conclusion(self, decision_json: str) -> None:
        """``dxai_decisions_total`` and, for a hold, ``dxai_holds_total`` per reason code."""
        decision = DecisionEvent.model_validate_json(decision_json)
        self.sensor.count("decisions", {"decision": decision.decision})
        if decision.decision == "hold":
            for code in sorted({code_word(r.code) for r in decision.reasons}):
                self.sensor.count("holds", {"reason": code})

    @staticmethod
    def _parent(job: JobRecord) -> Parent | None:
        """Outputs sent from the job's own task continue its span; others (a review's
        conclusion, the outbox after a restart) continue the trace the job store keeps."""
        if current_span_context() is not None:
            return None
        return context_from_traceparent(job.traceparent)

    async def flush(self, job: JobRecord) -> JobRecord:
        """Send whatever recorded output has not been sent yet; return the updated job."""
        job = await self._send_decision(job)
        if job.results_json is not None and not job.results_sent:
            event = ResultsEvent.model_validate_json(job.results_json)
            await self._publish_results(job, event)
            job = await self.store.mark_results_sent(job.key)
            self.sensor.observe("e2e_latency_s", time.time() - job.created_at, {"state": job.state})
        return job

    async def _publish_results(self, job: JobRecord, event: ResultsEvent) -> None:
        """Send the results event in a ``publish.results`` span (its ``traceparent``)."""
        attrs = {"job": job.short_key, "state": str(event.state)}
        attrs["output_study_uid"] = event.deidentified_study_uid or ""
        with self.sensor.span("publish.results", attrs, parent=self._parent(job)) as span:
            try:
                await self.publisher.results(event, span.context)
            except DxaiError:
                self.sensor.count("events_produced", {"topic": "results", "outcome": "error"})
                raise
        self.sensor.count("events_produced", {"topic": "results", "outcome": "ok"})

    async def _publish_decision(self, job: JobRecord, event: DecisionEvent) -> None:
        """Send a decision event in a ``publish.decision`` span (its ``traceparent``)."""
        attrs = {"job": job.short_key, "decision": str(event.decision)}
        with self.sensor.span("publish.decision", attrs, parent=self._parent(job)) as span:
            try:
                await self.publisher.decision(event, span.context)
            except DxaiError:
                self.sensor.count("events_produced", {"topic": "decisions", "outcome": "error"})
                raise
        self.sensor.count("events_produced", {"topic": "decisions", "outcome": "ok"})

    async def _send_decision(self, job: JobRecord) -> JobRecord:
        job = await self._send_deferred(job)
        if job.decision_json is None or job.decision_sent:
            return job
        event = DecisionEvent.model_validate_json(job.decision_json)
        await self._publish_decision(job, event)
        job = await self.store.mark_decision_sent(job.key)
        latency = time.time() - job.created_at
        self.sensor.observe("decision_latency_s", latency, {"decision": str(event.decision)})
        return job

    async def _send_deferred(self, job: JobRecord) -> JobRecord:
        """Send the deferred decision unless sent, or moot (the final decision is recorded)."""
        if job.deferred_json is None or job.deferred_sent:
            return job
        if job.decision_json is None:
            event = DecisionEvent.model_validate_json(job.deferred_json)
            await self._publish_decision(job, event)
            latency = time.time() - job.created_at
            self.sensor.observe("decision_latency_s", latency, {"decision": "deferred"})
        return await self.store.mark_deferred_sent(job.key)


@dataclass(frozen=True)
class _Released:
    """What a conclusion reports as released: count, de-identified study UID, and the earlier
    run's mark when that is what put them there (None: this run's own release)."""

    instances: int
    study_uid_out: str | None
    mark: ReleaseMark | None = None


def _partially_released(mark: ReleaseMark) -> Reason:
    """The hold reason of a job an earlier run of which sent outputs (counts only, no PHI)."""
    detail = f"up to {mark.instances} instances already sent to the destination"
    return Reason(code="partially_released", detail=detail)


def _audit_data(decision_json: str, results: ResultsEvent) -> dict[str, Any]:
    """The audit record of a conclusion: decision, reason codes, counts, the certificate's
    profile (codes and counts only: reason details may quote what a peer said)."""
    decision = DecisionEvent.model_validate_json(decision_json)
    certificate = results.certificate
    return {
        "decision": decision.decision,
        "reasons": [r.code for r in decision.reasons],
        "state": results.state,
        "study_uid": results.study_uid,
        "deidentified_study_uid": results.deidentified_study_uid,
        "instances_received": results.instances_received,
        "instances_released": results.instances_released,
        "instances_held": results.instances_held,
        "profile": certificate.profile if certificate else None,
        "options": list(certificate.options) if certificate else [],
        "pixel_mode": certificate.pixel_mode if certificate else None,
        "policy_rules": list(certificate.policy_rules) if certificate else [],
        "pipeline_version": results.pipeline_version,
    }
