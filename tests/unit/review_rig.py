"""A pipeline whose study is held by its pixel step, with the review store and service.

The processor is the real per-instance pipeline (headers, no OCR) whose first instance is then
reported held by the pixel step, as the OCR redactor would hold it (a box still legible): its
output and original are what a reviewer gets.  Gateways and publisher are in memory.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from dxai.actors.outbound import InstanceOutcome, InstancePipeline, build_pipeline
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.audit import AuditLog
from dxai.daemon.events import DecisionEvent, ResultsEvent
from dxai.daemon.gateways import StoreReport
from dxai.daemon.jobs import JobRecord, JobStore
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.daemon.review.component import PipelineReleaser, make_store
from dxai.daemon.review.service import ReviewService
from dxai.daemon.review.store import ReviewStore
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import TraceContext

PATIENT = "<script>alert(1)</script>"
HELD_BOX = {"x0": 10, "y0": 20, "x1": 60, "y1": 34, "reason": "second_reader_phi"}


def instances(count: int = 2) -> list[bytes]:
    """CT instances of one new study whose patient name is markup (an escaping probe)."""
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    study, series = generate_uid(), generate_uid()
    out = []
    for _ in range(count):
        ds = pydicom.dcmread(path)
        ds.PatientName = PATIENT
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        buffer = BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


class MemSource:
    def __init__(self, items: list[bytes]) -> None:
        self.items = items

    async def list_series(self, study_uid: str) -> list[str]:
        return ["1.2.3"]

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        for item in self.items:
            yield item

    async def aclose(self) -> None:
        return None


class MemSink:
    def __init__(self) -> None:
        self.stored: list[bytes] = []

    async def store(self, items: Sequence[bytes | Path]) -> StoreReport:
        self.stored.extend(i if isinstance(i, bytes) else i.read_bytes() for i in items)
        return StoreReport(stored=len(items))

    async def aclose(self) -> None:
        return None


class MemPublisher:
    def __init__(self) -> None:
        self.decisions: list[DecisionEvent] = []
        self.results_: list[ResultsEvent] = []

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        self.decisions.append(event)

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        self.results_.append(event)

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        return None


class HoldingProcessor:
    """The real pipeline; the instance whose input comes first in ``held`` is held."""

    def __init__(self, real: InstancePipeline, held: set[bytes]) -> None:
        self.real, self.held = real, held
        self.info, self.pixels = real.info, None

    def process(self, source: bytes | Path, *, scan: bool = True) -> InstanceOutcome:
        raw = source if isinstance(source, bytes) else source.read_bytes()
        out = self.real.process(raw, scan=scan)
        if raw not in self.held:
            return out
        report = {"status": "held", "boxes": [], "held_boxes": [HELD_BOX]}
        report["held_reasons"] = ["second_reader_phi"]
        return dataclasses.replace(
            out, status="held", reason="pixel_second_reader_phi", pixel_report=report
        )


@dataclass
class Rig:
    """A held study and everything around it."""

    config: DxaiConfig
    jobs: JobStore
    audit: AuditLog
    pipeline: Pipeline
    review: ReviewStore
    service: ReviewService
    sink: MemSink
    publisher: MemPublisher
    job: JobRecord
    inputs: list[bytes]


def event(study_uid: str, job: str = "job-r1") -> bytes:
    """A study event for the in-memory source."""
    body = {
        "event_type": "study_received",
        "study_uid": study_uid,
        "destination": "dest",
        "exchange_job_id": job,
        "source": {"kind": "dicomweb"},
    }
    return json.dumps(body).encode()


@asynccontextmanager
async def held_study(tmp: Path, extra: dict[str, object] | None = None) -> AsyncIterator[Rig]:
    """Run one two-instance study to ``held_for_review`` (its first instance held)."""
    data = {"state": {"data_dir": str(tmp)}, "deid": {"pixels": "never"}, **(extra or {})}
    config = DxaiConfig.model_validate(data)
    inputs = instances(2)
    study = str(pydicom.dcmread(BytesIO(inputs[0])).StudyInstanceUID)
    async with AsyncExitStack() as stack:
        jobs = await stack.enter_async_context(JobStore(tmp / config.state.sqlite_file))
        audit = await stack.enter_async_context(AuditLog(tmp / "audit.sqlite"))
        review = make_store(config, audit)
        sink, publisher = MemSink(), MemPublisher()
        parts = PipelineParts(
            store=jobs,
            source_for=lambda _e: MemSource(inputs),
            sink=sink,
            processor=HoldingProcessor(build_pipeline(config)[0], {inputs[0]}),
            publisher=publisher,
            sensor=Sensor(),
            retry=RetryPolicy(max_retries=0),
            audit=audit,
            review=review,
        )
        pipeline = await stack.enter_async_context(Pipeline(parts, PipelineConfig(cpu_workers=2)))
        assert await pipeline.submit(event(study), None, "test") == "accepted"
        await pipeline.drain(60)
        (job,) = await jobs.in_state("held_for_review")
        service = ReviewService(review, jobs, audit, PipelineReleaser(pipeline))
        yield Rig(config, jobs, audit, pipeline, review, service, sink, publisher, job, inputs)
