"""One inbound job: fetch the study, run its tasks, store the SR, send the ORU, tally.

Outputs are idempotent: the SR's Series and SOP Instance UIDs and the ORU's control id derive
from the job key, so a re-run (a retry, a restart) stores the same SR instance again and sends
an ORU the RIS can recognise as a repeat.  The SR goes to the configured destination
(``inbound.sr_destination``, else the event's; embedded mode without one: a file under
``<data_dir>/results/sr/<job_key>/``); the ORU over MLLP (``inbound.hl7.host``; without one: a
file ``<data_dir>/results/hl7/<job_key>.hl7``).  A destination that refuses the SR, or a RIS
that cannot be reached, fails the job's run (retried, then dead-lettered): nothing is lost.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dxai.actors.inbound.ai_model import check_model_tasks
from dxai.actors.inbound.findings import TaskReport
from dxai.actors.inbound.oru import build_oru
from dxai.actors.inbound.qc_protocols import load_protocols
from dxai.actors.inbound.sr import AlgorithmInfo, SrBuildError, build_sr, sr_uids_for
from dxai.actors.inbound.study import StudyView
from dxai.actors.inbound.summary import PriorStudy, SrLocation, SummaryInput, transfer_summary
from dxai.batching.client import InferenceClient
from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.inbound import InboundConfig
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DicomWebEndpoint, LocalSourceSpec
from dxai.configs.schema.triage import SummaryConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.events.models import PriorResult, RouteSuggestion
from dxai.daemon.gateways.base import StudySink
from dxai.daemon.gateways.hl7_out import send_hl7
from dxai.daemon.gateways.priors import priors_endpoint
from dxai.daemon.jobs import JobRecord
from dxai.daemon.pipeline.inbound_fetch import fetch_study
from dxai.daemon.pipeline.inbound_outcome import InboundOutcome, reason_code
from dxai.daemon.pipeline.inbound_prefetch import PriorPrefetcher
from dxai.daemon.pipeline.inbound_tasks import InboundContext, TaskOutputs, run_tasks
from dxai.daemon.pipeline.outcome import StudyTally
from dxai.daemon.pipeline.staging import Staging
from dxai.daemon.pipeline.study import list_study_series
from dxai.engines.registry import load_registry
from dxai.observability.metrics import Sensor

if TYPE_CHECKING:
    from dxai.daemon.pipeline.core import PipelineParts


@dataclass(frozen=True)
class InboundParts:
    """What the inbound workflow needs beyond the pipeline's parts."""

    context: InboundContext
    results_dir: Path
    embedded: bool

    def sr_folder(self, job_key: str) -> Path:
        """Where an embedded daemon without an SR destination writes a job's SR."""
        return self.results_dir / "sr" / job_key

    def hl7_file(self, job_key: str) -> Path:
        """Where a daemon without an MLLP destination writes a job's ORU."""
        return self.results_dir / "hl7" / f"{job_key}.hl7"


class SrNotStoredError(ServiceUnavailableError):
    """The destination did not take the SR (retried with the job)."""

    code = "sr_not_stored"


class InboundWork:
    """Runs an inbound job (called again on a retry: the staging area starts fresh)."""

    def __init__(self, parts: PipelineParts, inbound: InboundParts, staging: Staging) -> None:
        self.parts, self.inbound, self.staging = parts, inbound, staging

    async def run(self, job: JobRecord, event: StudyEvent) -> StudyTally:
        """Fetch the study, run its tasks, store the SR, send the ORU; the job's tally."""
        parts = self.parts
        sink = self._sr_sink(event)  # refuses an unconfigured destination before any fetch
        source = parts.source_for(event)
        area = await asyncio.to_thread(self.staging.open, job.key)
        try:
            series = await list_study_series(parts, job, source, event.study_uid)
            view = await fetch_study(source, event.study_uid, series, area)
            count = sum(len(s.instances) for s in view.series)
            await self._audit(job, "fetch", {"study_uid": event.study_uid, "instances": count})
            await parts.store.set_state(job.key, "processing")
            tally = StudyTally(received=count)
            if count:
                tally.inbound = await self._outcome(job, event, view, sink)
            return tally
        finally:
            await source.aclose()

    def _sr_sink(self, event: StudyEvent) -> StudySink | None:
        """The SR's destination; None: the embedded results folder."""
        name = self.inbound.context.config.sr_destination
        if name is None and self.inbound.embedded:
            self.parts.sink_for(event)  # the event's destination must still be configured
            return None
        if name is None:
            return self.parts.sink_for(event)
        routes = self.parts.sink_named
        return routes(name) if routes is not None else self.parts.sink_for(event)

    async def _outcome(
        self, job: JobRecord, event: StudyEvent, view: StudyView, sink: StudySink | None
    ) -> InboundOutcome:
        config = self.inbound.context.config
        with self.parts.sensor.span("inbound.tasks", {"job": job.short_key}):
            outputs = await run_tasks(view, event, self.inbound.context)
        series_uid, sop_uid = sr_uids_for(job.key, uid_root=config.sr.uid_root)
        where = "folder" if sink is None else "destination"
        location = SrLocation(where, view.study_uid, series_uid, sop_uid)
        summary = await asyncio.to_thread(_summary, view, outputs, location, config.summary)
        outcome = _outcome_of(outputs, summary)
        self._count(outcome)
        if config.sr.enabled:
            try:
                await self._store_sr(job, view, outputs, (series_uid, sop_uid), sink)
                outcome.sr_uids, outcome.sr_stored = (sop_uid,), where
            except SrBuildError as exc:  # the source's headers: the rest of the results stand
                outcome.sr_stored = "failed"
                outcome.reports.append(TaskReport("sr", "failed", detail=exc.code, blocking=False))
        outcome.hl7_control_id = _control_id(job.key)
        outcome.hl7 = await self._send_oru(job, view, outcome, series_uid, sop_uid)
        await self._audit(job, "inbound", _audit_data(outcome))
        return outcome

    async def _store_sr(
        self,
        job: JobRecord,
        view: StudyView,
        outputs: TaskOutputs,
        uids: tuple[str, str],
        sink: StudySink | None,
    ) -> None:
        config = self.inbound.context.config
        algorithms = [AlgorithmInfo(config.sr.algorithm_name, config.sr.algorithm_version)]
        with self.parts.sensor.span("inbound.sr", {"job": job.short_key}):
            data = await asyncio.to_thread(_sr_bytes, view, outputs, algorithms, config, uids)
            if sink is None:
                path = self.inbound.sr_folder(job.key) / f"{uids[1]}.dcm"
                await asyncio.to_thread(write_bytes_atomic, path, data)
                return
            report = await sink.store([data])
        if not report.ok or report.stored < 1:
            raise SrNotStoredError("the destination did not store the SR")

    async def _send_oru(
        self, job: JobRecord, view: StudyView, outcome: InboundOutcome, series: str, sop: str
    ) -> str:
        config = self.inbound.context.config
        stored = outcome.sr_stored in ("destination", "folder")
        text = await asyncio.to_thread(
            build_oru,
            view.first_header(),
            priority=outcome.priority,
            reports=outcome.reports,
            sr_study_uid=view.study_uid if stored else None,
            sr_series_uid=series if stored else None,
            sr_sop_uid=sop if stored else None,
            summary=outcome.summary,
            config=config.hl7,
            control_id=outcome.hl7_control_id or _control_id(job.key),
            now=datetime.now(UTC),
        )
        if config.hl7.host is None:
            path = self.inbound.hl7_file(job.key)
            await asyncio.to_thread(write_bytes_atomic, path, text.encode("utf-8"))
            return "written"
        with self.parts.sensor.span("inbound.hl7", {"job": job.short_key}):
            await send_hl7(text, config.hl7)
        return "sent"

    def _count(self, outcome: InboundOutcome) -> None:
        """Task statuses, finding severities and the priority (bounded labels: task names
        come from the configuration, never from a vendor's answer)."""
        sensor = self.parts.sensor
        sensor.count("inbound_priority", {"priority": outcome.priority})
        for report in outcome.reports:
            task = reason_code(report.task)
            sensor.count("inbound_tasks", {"task": task, "status": report.status})
            for finding in report.findings:
                sensor.count("inbound_findings", {"task": task, "severity": finding.severity})

    async def _audit(self, job: JobRecord, kind: str, data: dict[str, Any]) -> None:
        if self.parts.audit is not None:
            await self.parts.audit.append(kind, job.key, data)


def _control_id(job_key: str) -> str:
    """The ORU's control id: stable per job (MSH-10 allows 20 characters in v2.5)."""
    return "DXAI" + job_key[:16]


def _sr_bytes(
    view: StudyView,
    outputs: TaskOutputs,
    algorithms: list[AlgorithmInfo],
    config: InboundConfig,
    uids: tuple[str, str],
) -> bytes:
    ds = build_sr(
        view,
        outputs.reports,
        outputs.triage.priority,
        algorithms,
        config.sr,
        series_uid=uids[0],
        sop_uid=uids[1],
    )
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _summary(view: StudyView, outputs: TaskOutputs, sr: SrLocation, config: SummaryConfig) -> str:
    priors = [PriorStudy(p.study_uid, p.modalities, p.study_date) for p in outputs.priors]
    inp = SummaryInput.from_study(
        view, triage=outputs.triage, reports=outputs.reports, priors=priors, sr=sr
    )
    return transfer_summary(inp, config)


def _outcome_of(outputs: TaskOutputs, summary: str) -> InboundOutcome:
    priors = tuple(
        PriorResult(
            study_uid=p.study_uid,
            rank=i,
            modalities=p.modalities,
            match_score=min(1.0, max(0.0, p.match_score)),
            relevance=max(0.0, p.relevance),
        )
        for i, p in enumerate(outputs.priors, start=1)
    )
    routes = tuple(
        RouteSuggestion(destination=s.destination[:128], rule=s.rule[:64], why=s.why[:256])
        for s in outputs.routing.suggestions
    )
    reasons = tuple(f"{r.rule}: {r.detail}" for r in outputs.triage.reasons)
    return InboundOutcome(
        reports=list(outputs.reports),
        priority=outputs.triage.priority,
        priority_reasons=reasons,
        priors=priors,
        routes=routes,
        summary=summary,
    )


def _audit_data(outcome: InboundOutcome) -> dict[str, Any]:
    """PHI-free: the priority, finding codes, counts and the SR's UID."""
    codes = sorted({f.code for r in outcome.reports for f in r.findings})
    return {
        "priority": outcome.priority,
        "findings": codes,
        "priors": len(outcome.priors),
        "sr_uids": list(outcome.sr_uids),
        "hl7": outcome.hl7,
    }


def open_inbound(config: DxaiConfig, client: InferenceClient | None) -> InboundParts | None:
    """The inbound workflow's parts (None when ``inbound.enabled`` is false); blocking: reads
    the protocol library and checks every model task against the registry (``ConfigError``
    naming the key: the daemon refuses to start)."""
    inbound = config.inbound
    if not inbound.enabled:
        return None
    protocols = load_protocols(inbound.qc.protocols_file)
    if inbound.ai.models:
        check_model_tasks(inbound.ai, load_registry(config.inference.models_file))
    priors_folder = Path(config.state.data_dir) / "priors"
    context = InboundContext(inbound, protocols, client, priors_archive(config), priors_folder)
    return InboundParts(context, config.results_folder(), config.mode == "embedded")


def priors_archive(config: DxaiConfig) -> DicomWebEndpoint | Path | None:
    """Where priors are searched: the DICOMweb endpoint or the folder of the configured
    ``inbound.priors.archive`` source; None when priors are off."""
    priors = config.inbound.priors
    if not priors.enabled:
        return None
    spec = config.source_routes().get(priors.archive)
    if isinstance(spec, LocalSourceSpec):
        return Path(spec.root)
    return priors_endpoint(config.source_routes(), priors)


def open_prefetcher(config: DxaiConfig, sensor: Sensor) -> PriorPrefetcher | None:
    """The ADT prior prefetch (None: inbound or priors off)."""
    archive = priors_archive(config) if config.inbound.enabled else None
    if archive is None:
        return None
    folder = Path(config.state.data_dir) / "priors"
    return PriorPrefetcher(archive, config.inbound.priors, folder, sensor)
