"""Graceful stop: running jobs get ``pipeline.drain_grace_s``; the rest wait for the restart."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file

from dxai.actors.outbound import build_pipeline
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.events import DecisionEvent, ResultsEvent
from dxai.daemon.gateways import StoreReport
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import TraceContext

CT = get_testdata_file("CT_small.dcm")
assert CT is not None
RAW = Path(CT).read_bytes()
STUDY = str(pydicom.dcmread(CT).StudyInstanceUID)
DEADLINE_S = 30.0


class GatedSource:
    """Lists one series once ``gate`` opens (never, unless the test opens it)."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    async def list_series(self, study_uid: str) -> list[str]:
        self.asked.set()
        await self.gate.wait()
        return ["1.2.3"]

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        yield RAW

    async def aclose(self) -> None:
        return None


class Sink:
    async def store(self, instances: Sequence[bytes | Path]) -> StoreReport:
        return StoreReport(stored=len(instances))

    async def aclose(self) -> None:
        return None


class Publisher:
    def __init__(self) -> None:
        self.sent: list[ResultsEvent] = []

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        return None

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        self.sent.append(event)

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        return None


def _event(job: str) -> bytes:
    return json.dumps(
        {
            "event_type": "study_received",
            "study_uid": STUDY,  # the instances' own: another study's would not be released
            "destination": "dest",
            "exchange_job_id": job,
            "source": {"kind": "dicomweb"},
        }
    ).encode()


def _parts(tmp: Path, source: GatedSource, publisher: Publisher, store: JobStore) -> PipelineParts:
    config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}})
    return PipelineParts(
        store=store,
        source_for=lambda _e: source,
        sink=Sink(),
        processor=build_pipeline(config)[0],
        publisher=publisher,
        sensor=Sensor(),
        retry=RetryPolicy(max_retries=0),
    )


async def test_stop_cancels_what_outlives_the_grace_period_and_keeps_it_resumable(
    tmp_path: Path,
) -> None:
    source, publisher = GatedSource(), Publisher()
    store = JobStore(tmp_path / "jobs.sqlite3")
    config = PipelineConfig(cpu_workers=1, drain_grace_s=0.2)
    async with store:
        pipe = Pipeline(_parts(tmp_path, source, publisher, store), config)
        await pipe.start()
        assert await pipe.submit(_event("stuck"), None, "t/0/0") == "accepted"
        await asyncio.wait_for(source.asked.wait(), DEADLINE_S)
        started = time.monotonic()
        await asyncio.wait_for(pipe.stop(), DEADLINE_S)
        assert time.monotonic() - started < DEADLINE_S / 2
        assert pipe.in_flight == 0
        unfinished = await store.unfinished()
        assert [job.state for job in unfinished] == ["fetching"]  # resumed at the next start
        assert publisher.sent == []


async def test_stop_lets_jobs_that_finish_within_the_grace_period_finish(tmp_path: Path) -> None:
    source, publisher = GatedSource(), Publisher()
    store = JobStore(tmp_path / "jobs.sqlite3")
    config = PipelineConfig(cpu_workers=1, drain_grace_s=DEADLINE_S)
    async with store:
        pipe = Pipeline(_parts(tmp_path, source, publisher, store), config)
        await pipe.start()
        assert await pipe.submit(_event("quick"), None, "t/0/1") == "accepted"
        await asyncio.wait_for(source.asked.wait(), DEADLINE_S)
        stopping = asyncio.create_task(pipe.stop())
        source.gate.set()  # the job can go on only now, while the pipeline drains
        await asyncio.wait_for(stopping, DEADLINE_S)
        assert await store.unfinished() == []
        assert [r.state for r in publisher.sent] == ["released"]
