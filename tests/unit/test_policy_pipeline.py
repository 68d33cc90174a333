"""The policy in the pipeline: a destination rule holds a study that passed for review (kept like
a pixel hold, released on approval), consent holds and passes, a pixel hold a rule does not send
to review blocks, the matched rule is in the certificate and the audit log (no names)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
import pytest
from review_rig import HoldingProcessor, MemPublisher, MemSink, MemSource, event, instances
from test_policy_consent import consent

from dxai.actors.outbound import PipelineChoice, build_pipeline
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.audit import AuditLog, read_records
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.daemon.policy.consent import make_consent_source
from dxai.daemon.policy.engine import PolicyEngine
from dxai.daemon.policy.governance import Governance
from dxai.daemon.policy.processors import open_processors
from dxai.daemon.review.component import PipelineReleaser, ReviewComponent, make_store
from dxai.daemon.review.service import ReviewService
from dxai.daemon.review.store import ReviewStore
from dxai.observability.metrics import Sensor

pytestmark = pytest.mark.unit

DOCTOR = "Kildare^James"


@dataclass
class Run:
    """One job run through a pipeline with a policy."""

    config: DxaiConfig
    jobs: JobStore
    audit: AuditLog
    pipeline: Pipeline
    review: ReviewStore
    sink: MemSink
    publisher: MemPublisher
    inputs: list[bytes]


def _inputs(count: int = 2) -> list[bytes]:
    """Two CT instances of one study whose referring physician is ``DOCTOR``."""
    out = []
    for raw in instances(count):
        ds = pydicom.dcmread(BytesIO(raw))
        ds.ReferringPhysicianName = DOCTOR
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def _config(tmp: Path, policy: dict[str, Any], **extra: Any) -> DxaiConfig:
    data = {"state": {"data_dir": str(tmp)}, "deid": {"pixels": "never"}, "policy": policy}
    return DxaiConfig.model_validate({**data, **extra})


@asynccontextmanager
async def policy_run(
    tmp: Path,
    policy: dict[str, Any],
    held: bool = False,
    release: str = "study",
) -> AsyncIterator[Run]:
    """Run one two-instance study through a pipeline with ``policy`` (``held``: the pixel step
    holds its first instance); yield once the job concluded."""
    config = _config(tmp, policy)
    inputs = _inputs()
    study = str(pydicom.dcmread(BytesIO(inputs[0])).StudyInstanceUID)
    async with AsyncExitStack() as stack:
        jobs = await stack.enter_async_context(JobStore(tmp / config.state.sqlite_file))
        audit = await stack.enter_async_context(AuditLog(tmp / "audit.sqlite"))
        review = make_store(config, audit)
        processors = await open_processors(config, Sensor(), stack)
        governance = processors.governance
        if held:
            governance = _holding(config, inputs[0])
        sink, publisher = MemSink(), MemPublisher()
        parts = PipelineParts(
            store=jobs,
            source_for=lambda _e: MemSource(inputs),
            sink=sink,
            processor=processors.default,
            publisher=publisher,
            sensor=Sensor(),
            retry=RetryPolicy(max_retries=0),
            audit=audit,
            review=review,
            governance=governance,
        )
        settings = PipelineConfig(cpu_workers=2, release=release)  # type: ignore[arg-type]
        pipeline = await stack.enter_async_context(Pipeline(parts, settings))
        assert await pipeline.submit(event(study), None, "test") == "accepted"
        await pipeline.drain(60)
        yield Run(config, jobs, audit, pipeline, review, sink, publisher, inputs)


def _holding(config: DxaiConfig, held: bytes) -> Governance:
    """The policy of ``config`` whose processors hold ``held`` as the pixel step would."""
    engine = PolicyEngine(config.policy, config.deid)
    processors: dict[tuple[str, str], Any] = {}
    for res in engine.all_resolutions():
        choice = PipelineChoice(profile=res.profile, pixels=res.pixels)
        real = build_pipeline(config, choice=choice)[0]
        processors[res.key] = HoldingProcessor(real, {held})
    return Governance(engine, processors, make_consent_source(config.policy.consent_source))


def _records(tmp: Path, kind: str) -> list[Any]:
    return [r for r in read_records(tmp / "audit.sqlite") if r.kind == kind]


REVIEW_ALWAYS = {
    "rules": [
        {
            "name": "dest-needs-review",
            "match": {"destination": ["dest"], "modality": ["CT"]},
            "then": {"review": {"required_always": True}, "review_timeout_s": 600},
        }
    ]
}


async def test_destination_rule_holds_a_passed_study_for_review(tmp_path: Path) -> None:
    async with policy_run(tmp_path, REVIEW_ALWAYS) as run:
        (job,) = await run.jobs.in_state("held_for_review")
        assert run.sink.stored == []  # nothing reached the destination
        (decision,) = run.publisher.decisions
        assert decision.decision == "hold"
        assert [r.code for r in decision.reasons] == ["review_required"]
        (results,) = run.publisher.results_
        assert results.certificate is not None and results.instances_released == 0
        assert results.certificate.policy_rules == ("dest-needs-review",)
        manifest = run.review.load(job.key)
        assert manifest is not None and manifest.timeout_s == 600
        assert [e.status for e in manifest.instances] == ["passed", "passed"]
        service = ReviewService(run.review, run.jobs, run.audit, PipelineReleaser(run.pipeline))
        await service.approve(job.key, "alice")
        await run.pipeline.drain(30)
        assert len(run.sink.stored) == 2
        assert run.publisher.decisions[-1].decision == "proceed"
    (first, second) = _records(tmp_path, "decision")
    assert first.data["policy_rules"] == ["dest-needs-review"] and first.data["decision"] == "hold"
    assert second.data["policy_rules"] == ["dest-needs-review"]
    (policy,) = _records(tmp_path, "policy")
    assert policy.data["holds"] == ["review_required"]


async def test_review_timeout_of_the_rule_expires_the_review(tmp_path: Path) -> None:
    async with policy_run(tmp_path, REVIEW_ALWAYS) as run:
        (job,) = await run.jobs.in_state("held_for_review")
        component = ReviewComponent(run.config, run.review, run.jobs, run.audit, run.pipeline)
        manifest = run.review.load(job.key)
        assert manifest is not None
        manifest.kept_at = time.time() - 900  # past the rule's 600 s, within retention_s
        run.review.save(manifest)
        assert await component.purge_now() == {"expired": 1, "removed": 0}
        await run.pipeline.drain(30)
        assert run.publisher.decisions[-1].reasons[0].code == "review_expired"


async def test_a_rule_that_may_hold_turns_series_release_into_study_release(
    tmp_path: Path,
) -> None:
    async with policy_run(tmp_path, REVIEW_ALWAYS, release="series") as run:
        assert await run.jobs.in_state("held_for_review")
        assert run.sink.stored == []


def _consent_policy(tmp: Path) -> dict[str, Any]:
    return {
        "rules": [
            {
                "name": "research-consent",
                "match": {"referring_physician": [DOCTOR]},
                "then": {"profile": "research_longitudinal", "consent": {"scope": ["research"]}},
            }
        ],
        "consent_source": {"kind": "folder", "folder": str(tmp / "consents")},
    }


async def test_missing_consent_holds_and_no_name_reaches_the_audit_log(tmp_path: Path) -> None:
    (tmp_path / "consents").mkdir()
    async with policy_run(tmp_path, _consent_policy(tmp_path)) as run:
        assert await run.jobs.in_state("held_for_review")
        assert run.sink.stored == []
        (decision,) = run.publisher.decisions
        assert [r.code for r in decision.reasons] == ["consent_missing"]
        (results,) = run.publisher.results_
        tasks = {t.task: t for t in results.tasks}
        assert (tasks["consent"].status, tasks["consent"].detail) == ("held", "consent_missing")
        assert results.certificate is not None
        assert results.certificate.profile == "research_longitudinal"
        assert results.certificate.policy_rules == ("research-consent",)
    (policy,) = _records(tmp_path, "policy")
    assert policy.data["consent"] == "missing"
    text = "\n".join(json.dumps(r.as_dict()) for r in read_records(tmp_path / "audit.sqlite"))
    assert "kildare" not in text.lower() and "1CT1" not in text


async def test_valid_consent_releases(tmp_path: Path) -> None:
    folder = tmp_path / "consents"
    folder.mkdir()
    (folder / "c.json").write_text(json.dumps(consent(patient="1CT1", end=None)))
    async with policy_run(tmp_path, _consent_policy(tmp_path)) as run:
        assert await run.jobs.in_state("released")
        assert len(run.sink.stored) == 2
        (results,) = run.publisher.results_
        assert {t.task: t.status for t in results.tasks}["consent"] == "passed"


async def test_pixel_hold_blocks_where_the_rule_allows_no_review(tmp_path: Path) -> None:
    policy = {"rules": [{"name": "no-reviewers", "then": {"review": {"on_pixel_hold": False}}}]}
    async with policy_run(tmp_path / "a", policy, held=True) as run:
        assert await run.jobs.in_state("blocked")
        (decision,) = run.publisher.decisions
        codes = [r.code for r in decision.reasons]
        assert decision.decision == "block" and codes[-1] == "policy_no_review"
        assert run.review.job_keys() == []  # nothing kept: nobody reviews it
    policy = {"rules": [{"name": "reviewers", "then": {}}]}  # the same hold: kept for review
    async with policy_run(tmp_path / "b", policy, held=True) as run:
        assert await run.jobs.in_state("held_for_review")
