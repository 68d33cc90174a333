"""Run an inbound study's tasks: the QC / preflight gate, AI models and services and the
priors search side by side, then triage (which sees their findings), routing and the summary.

CPU work (QC, triage, routing, templating) runs in threads; model items go through the
daemon's batcher; AI services and the archive through their gateways.  A task that fails with
a project error reports ``failed`` (``timed_out`` past ``inbound.task_deadline_s``) and the
others still run; whether that holds the study is the task's ``blocking`` flag.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from dxai.actors.inbound.ai_model import run_model_task
from dxai.actors.inbound.findings import TaskReport
from dxai.actors.inbound.patient_match import demographics_of
from dxai.actors.inbound.priors import Prior, current_study_of, priors_report
from dxai.actors.inbound.qc import preflight, run_qc
from dxai.actors.inbound.qc_protocols import ProtocolLibrary
from dxai.actors.inbound.routing import RoutingInput, RoutingResult, suggest_routes
from dxai.actors.inbound.study import StudyView
from dxai.actors.inbound.triage import TriageInput, TriageResult, triage
from dxai.batching.client import InferenceClient
from dxai.configs.errors import DxaiError
from dxai.configs.schema.inbound import InboundConfig
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.events import StudyEvent
from dxai.daemon.gateways.ai_service import ai_service_request, call_ai_service
from dxai.daemon.gateways.priors import retrieve_prior, search_priors
from dxai.daemon.gateways.priors_local import search_local_priors


@dataclass(frozen=True)
class InboundContext:
    """What the tasks run with: the section, the protocols, the batcher, the priors archive."""

    config: InboundConfig
    protocols: ProtocolLibrary
    client: InferenceClient | None
    archive: DicomWebEndpoint | Path | None  # a DICOMweb archive, or a local archive folder
    priors_folder: Path | None = None  # where ``priors.retrieve`` puts them (per study)


@dataclass(frozen=True)
class TaskOutputs:
    """Every report in order (gate, AI, priors, triage, routing) and the structured results."""

    reports: tuple[TaskReport, ...]
    triage: TriageResult
    routing: RoutingResult
    priors: tuple[Prior, ...]


async def _guard(task: str, deadline_s: float, call: Awaitable[TaskReport]) -> TaskReport:
    """``call``'s report; ``failed`` on a project error, ``timed_out`` past the deadline."""
    try:
        return await asyncio.wait_for(call, timeout=deadline_s)
    except TimeoutError:
        return TaskReport(task, "timed_out", detail=f"past {deadline_s:g} s")
    except DxaiError as exc:
        return TaskReport(task, "failed", detail=exc.code)


def _thread(call: Callable[[], TaskReport]) -> Awaitable[TaskReport]:
    return asyncio.to_thread(call)


def _gate(view: StudyView, event: StudyEvent, ctx: InboundContext) -> list[Awaitable[TaskReport]]:
    """QC, the destination's preflight, every AI model and service (not yet started)."""
    cfg, limit = ctx.config, ctx.config.task_deadline_s
    calls: list[Awaitable[TaskReport]] = []
    if cfg.qc.enabled:
        calls.append(_guard("qc", limit, _thread(lambda: run_qc(view, cfg.qc, ctx.protocols))))
    target = cfg.preflight.get(event.destination)
    if target is not None:
        calls.append(_guard("preflight", limit, _thread(lambda: preflight(view, target))))
    for contract in cfg.ai.models:
        if ctx.client is None:
            calls.append(_unavailable(contract.name, contract.blocking))
            continue
        run = run_model_task(view, contract, ctx.client, deadline_s=limit)
        calls.append(_guard(contract.name, limit, run))
    for service in cfg.ai.services:
        request = ai_service_request(view, service)
        calls.append(_guard(service.name, limit + 1.0, call_ai_service(service, request)))
    return calls


async def _unavailable(task: str, blocking: bool) -> TaskReport:
    return TaskReport(task, "failed", detail="inference_unavailable", blocking=blocking)


async def _priors(view: StudyView, ctx: InboundContext) -> tuple[TaskReport, tuple[Prior, ...]]:
    """The ranked priors and their report (``failed`` when the archive could not be asked)."""
    if ctx.archive is None or not ctx.config.priors.enabled:
        return TaskReport("priors", "skipped", detail="no archive", blocking=False), ()
    target, current = demographics_of(view.first_header()), current_study_of(view)
    if isinstance(ctx.archive, Path):
        search = search_local_priors(ctx.archive, target, current, ctx.config.priors)
    else:
        search = search_priors(ctx.archive, target, current, ctx.config.priors)
    try:
        found = await asyncio.wait_for(search, timeout=ctx.config.task_deadline_s)
    except TimeoutError:
        return TaskReport("priors", "timed_out", blocking=False), ()
    except DxaiError as exc:
        return TaskReport("priors", "failed", detail=exc.code, blocking=False), ()
    report = priors_report(found)
    counts = dict(report.counts)
    remote = isinstance(ctx.archive, DicomWebEndpoint)
    if ctx.config.priors.retrieve and remote and ctx.priors_folder is not None and found:
        counts["retrieved_instances"] = await _retrieve(ctx, found, view.study_uid)
    return dataclasses.replace(report, counts=counts, blocking=False), found


async def _retrieve(ctx: InboundContext, priors: tuple[Prior, ...], study_uid: str) -> int:
    """Fetch the ranked priors (WADO-RS) under ``<priors_folder>/<study uid>/``: ready for
    comparison; a prior that cannot be fetched is left out (the search result stands)."""
    assert isinstance(ctx.archive, DicomWebEndpoint) and ctx.priors_folder is not None
    fetched = 0
    for prior in priors:
        folder = ctx.priors_folder / study_uid / prior.study_uid
        try:
            fetched += len(await retrieve_prior(ctx.archive, prior, folder))
        except DxaiError:
            continue
    return fetched


async def run_tasks(view: StudyView, event: StudyEvent, ctx: InboundContext) -> TaskOutputs:
    """Every inbound task over ``view`` (see the module doc)."""
    gate = asyncio.gather(*_gate(view, event, ctx))
    (priors_out, priors), reports = await asyncio.gather(_priors(view, ctx), gate)
    findings = [f for r in reports for f in r.findings]
    cfg = ctx.config
    inp = TriageInput.from_study(
        view, event_priority=event.priority, hl7_message=event.hl7, findings=findings
    )
    result = await asyncio.to_thread(triage, inp, cfg.triage)
    routing_in = RoutingInput.from_study(view, priority=result.priority)
    routing = await asyncio.to_thread(suggest_routes, routing_in, cfg.routing)
    routed = _advisory(routing.report())
    if not cfg.routing.destinations and not cfg.routing.rules:
        routed = TaskReport("routing", "skipped", detail="no routing rules", blocking=False)
    done = (*reports, priors_out, result.report(), routed)
    return TaskOutputs(done, result, routing, priors)


def _advisory(report: TaskReport) -> TaskReport:
    """Routing suggests; it never holds a study."""
    return dataclasses.replace(report, blocking=False)
