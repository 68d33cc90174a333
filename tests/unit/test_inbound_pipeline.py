"""The inbound workflow inside the Pipeline (fakes for source, sink and publisher): decision and
results from the tasks, the SR stored to the destination, the ORU written, a hold a reviewer
accepts, a refused SR that fails the job with a dead letter."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import hl7
import pydicom
import pytest
from inbound_helpers import make_ct_series, to_bytes
from review_rig import MemPublisher, MemSink, MemSource

from dxai.actors.inbound.sr import SrBuildError
from dxai.actors.outbound import build_pipeline
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.audit import AuditLog
from dxai.daemon.gateways import StoreReport
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.daemon.pipeline.inbound import open_inbound
from dxai.daemon.review.component import PipelineReleaser, make_store
from dxai.daemon.review.service import ReviewService
from dxai.observability.metrics import Sensor


@dataclass
class InboundRig:
    """A pipeline with the inbound workflow over one in-memory study."""

    config: DxaiConfig
    pipeline: Pipeline
    jobs: JobStore
    sink: MemSink
    publisher: RecordingPublisher
    audit: AuditLog
    study_uid: str


class RefusingSink(MemSink):
    """A destination that refuses everything."""

    async def store(self, items: object) -> StoreReport:
        return StoreReport(stored=0, failed_uids=("refused",))


class RecordingPublisher(MemPublisher):
    """Keeps the dead letters too: (original, reason, code, origin)."""

    def __init__(self) -> None:
        super().__init__()
        self.dlq: list[tuple[bytes, str, str, str]] = []

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        self.dlq.append((original, reason, code, origin))


def _event(study_uid: str) -> bytes:
    body = {
        "event_type": "study_received",
        "study_uid": study_uid,
        "destination": "dest",
        "exchange_job_id": "inb-1",
        "source": {"kind": "dicomweb"},
    }
    return json.dumps(body).encode()


@asynccontextmanager
async def inbound_rig(
    tmp: Path, missing: frozenset[int], sink: MemSink | None = None
) -> AsyncIterator[InboundRig]:
    config = DxaiConfig.model_validate(
        {
            "mode": "production",
            "kafka": {"bootstrap_servers": "127.0.0.1:9"},
            "state": {"data_dir": str(tmp)},
            "deid": {"pixels": "never"},
            "inbound": {"enabled": True, "priors": {"enabled": False}},
        }
    )
    series = make_ct_series(10, 2.5, 2.5, missing=missing)
    study_uid = str(series[0].StudyInstanceUID)
    items = [to_bytes(ds) for ds in series]
    async with AsyncExitStack() as stack:
        jobs = await stack.enter_async_context(JobStore(tmp / "jobs.sqlite3"))
        audit = await stack.enter_async_context(AuditLog(tmp / "audit.sqlite"))
        sink, publisher = sink or MemSink(), RecordingPublisher()
        parts = PipelineParts(
            store=jobs,
            source_for=lambda _e: MemSource(items),
            sink=sink,
            processor=build_pipeline(config)[0],
            publisher=publisher,
            sensor=Sensor(),
            retry=RetryPolicy(max_retries=0),
            audit=audit,
            review=make_store(config, audit),
            inbound=open_inbound(config, None),
        )
        pipeline = await stack.enter_async_context(Pipeline(parts, PipelineConfig(cpu_workers=2)))
        assert await pipeline.submit(_event(study_uid), None, "test") == "accepted"
        await pipeline.drain(120)
        yield InboundRig(config, pipeline, jobs, sink, publisher, audit, study_uid)


async def test_a_missing_slice_holds_and_a_reviewer_accepts_the_study(tmp_path: Path) -> None:
    async with inbound_rig(tmp_path, frozenset({4})) as rig:
        decision = rig.publisher.decisions[-1]
        assert decision.decision == "hold"
        assert "qc_slice_gap" in {r.code for r in decision.reasons}
        results = rig.publisher.results_[-1]
        assert results.state == "held_for_review" and results.certificate is None
        assert results.inbound is not None and results.inbound.sr_stored == "destination"
        (sr_bytes,) = rig.sink.stored
        sr = pydicom.dcmread(BytesIO(sr_bytes))
        assert sr.SOPInstanceUID == results.sr_uids[0]
        assert sr.StudyInstanceUID == rig.study_uid
        oru = (tmp_path / "results" / "hl7" / f"{results.job_key}.hl7").read_bytes()
        assert str(hl7.parse(oru.decode("utf-8")).segment("MSH")[9]).startswith("ORU^R01")
        releaser = PipelineReleaser(rig.pipeline)
        store = make_store(rig.config, rig.audit)
        service = ReviewService(store, rig.jobs, rig.audit, releaser)
        await service.approve(results.job_key, "carol", "QC gap known: old scanner")
        await rig.pipeline.drain(30)
        final = rig.publisher.results_[-1]
        assert final.state == "released" and final.certificate is None
        assert final.inbound == results.inbound  # the findings stand; the reviewer accepted
        assert rig.publisher.decisions[-1].decision == "proceed"


async def test_a_complete_study_proceeds_with_its_priority(tmp_path: Path) -> None:
    async with inbound_rig(tmp_path, frozenset()) as rig:
        decision = rig.publisher.decisions[-1]
        assert decision.decision == "proceed"
        assert {r.code for r in decision.reasons} == {"inbound_ready", "priority_routine"}
        tasks = {t.task: t.status for t in rig.publisher.results_[-1].tasks}
        assert tasks["qc"] == "passed" and tasks["priors"] == "skipped"


async def test_a_refused_sr_fails_the_job_with_a_dead_letter(tmp_path: Path) -> None:
    async with inbound_rig(tmp_path, frozenset(), RefusingSink()) as rig:
        decision = rig.publisher.decisions[-1]
        assert decision.decision == "block"
        assert decision.reasons[0].code == "sr_not_stored"
        assert rig.publisher.dlq and rig.publisher.dlq[-1][2] == "sr_not_stored"


async def test_an_sr_the_headers_do_not_allow_leaves_the_other_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise SrBuildError("the study's UIDs are not valid DICOM UIDs")

    monkeypatch.setattr("dxai.daemon.pipeline.inbound.build_sr", refuse)
    async with inbound_rig(tmp_path, frozenset()) as rig:
        assert rig.publisher.decisions[-1].decision == "proceed"
        results = rig.publisher.results_[-1]
        assert results.inbound is not None and results.inbound.sr_stored == "failed"
        assert results.sr_uids == () and not rig.sink.stored
        tasks = {t.task: (t.status, t.blocking) for t in results.tasks}
        assert tasks["sr"] == ("failed", False)
        oru = (tmp_path / "results" / "hl7" / f"{results.job_key}.hl7").read_bytes()
        assert b"|RP|" not in oru  # no pointer to an SR that does not exist
