"""A daemon killed after a study's outputs reached the destination but before the job's
conclusion was recorded: the job runs again, and its conclusion must account for what the
destination already holds (found by the chaos run, seed 1825320258: 6 instances at the
destination that no ``released`` results event accounted for).

The kill is a sink that stores the instances and then cancels the job's task (as a SIGKILL
would end it there: nothing concluded, the job left ``processing`` in the store); a second
pipeline on the same job store and data dir then resumes it, as ``dxai run`` does at start.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from review_rig import HoldingProcessor, MemPublisher, MemSink, MemSource, instances

from dxai.actors.outbound import build_pipeline
from dxai.actors.outbound.series import InstanceProcessor
from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.gateways import StoreReport, StudySink, StudySource
from dxai.daemon.jobs import JobRecord, JobStore, ReleaseMark
from dxai.daemon.pipeline import Pipeline, PipelineParts, RetryPolicy
from dxai.observability.metrics import Sensor


class KilledAfterStore(MemSink):
    """Stores what it is given, then the daemon dies (the job's task ends, nothing recorded)."""

    async def store(self, items: Sequence[bytes | Path]) -> StoreReport:
        await super().store(items)
        raise asyncio.CancelledError


class DownSource(MemSource):
    """The source archive is down for the whole re-run."""

    async def list_series(self, study_uid: str) -> list[str]:
        raise ServiceUnavailableError("source down")

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        raise ServiceUnavailableError("source down")
        yield b""  # pragma: no cover - makes this an async generator


@dataclass
class World:
    """One data dir and job store shared by the daemon's incarnations; the destination."""

    tmp: Path
    inputs: list[bytes] = field(default_factory=lambda: instances(2))
    dest: MemSink = field(default_factory=MemSink)

    @property
    def config(self) -> DxaiConfig:
        """A daemon config on the world's data dir (its de-identification key is kept)."""
        return DxaiConfig.model_validate(
            {"state": {"data_dir": str(self.tmp)}, "deid": {"pixels": "never"}}
        )

    @property
    def study(self) -> str:
        """The original study UID."""
        return str(pydicom.dcmread(BytesIO(self.inputs[0])).StudyInstanceUID)

    def event(self) -> bytes:
        """The study's event."""
        body = {
            "event_type": "study_scheduled_for_exchange",
            "study_uid": self.study,
            "destination": "dest",
            "exchange_job_id": "job-kill-1",
            "source": {"kind": "dicomweb"},
        }
        return json.dumps(body).encode()


async def _incarnation(
    world: World,
    store: JobStore,
    parts: tuple[StudySource, StudySink, InstanceProcessor],
    first: bool,
) -> MemPublisher:
    """One daemon incarnation: submit the event (first) or resume unfinished jobs, drain."""
    source, sink, processor = parts
    publisher = MemPublisher()
    pipeline_parts = PipelineParts(
        store=store,
        source_for=lambda _e: source,
        sink=sink,
        processor=processor,
        publisher=publisher,
        sensor=Sensor(),
        retry=RetryPolicy(max_retries=0),
    )
    config = PipelineConfig(cpu_workers=1, decision_deadline_s=30.0)
    async with Pipeline(pipeline_parts, config) as pipeline:
        if first:
            assert await pipeline.submit(world.event(), None, "test") == "accepted"
        else:
            assert await pipeline.resume_unfinished() == 1
        await pipeline.drain(60)
    return publisher


async def _killed_after_release(world: World, store: JobStore) -> JobRecord:
    """The first incarnation: the study passes, is stored, and the daemon dies."""
    real = build_pipeline(world.config)[0]
    killer = KilledAfterStore()
    parts = (MemSource(world.inputs), killer, real)
    publisher = await _incarnation(world, store, parts, first=True)
    assert publisher.decisions == [] and publisher.results_ == []
    world.dest.stored.extend(killer.stored)
    (job,) = await store.unfinished()
    assert job.state == "processing" and job.decision_json is None
    assert len(world.dest.stored) == 2
    return job


def _sop_uids(items: list[bytes]) -> set[str]:
    return {str(pydicom.dcmread(BytesIO(b), stop_before_pixels=True).SOPInstanceUID) for b in items}


def _study_uids(items: list[bytes]) -> set[str]:
    return {
        str(pydicom.dcmread(BytesIO(b), stop_before_pixels=True).StudyInstanceUID) for b in items
    }


async def test_rerun_that_holds_accounts_for_the_released_instances(tmp_path: Path) -> None:
    """The re-run holds (one instance now fails its pixel check): the job concludes ``hold``
    with ``partially_released`` and its results count the instances the destination holds."""
    world = World(tmp_path)
    async with JobStore(tmp_path / "dxai.sqlite3") as store:
        await _killed_after_release(world, store)
        holding = HoldingProcessor(build_pipeline(world.config)[0], {world.inputs[0]})
        parts = (MemSource(world.inputs), world.dest, holding)
        publisher = await _incarnation(world, store, parts, first=False)
    (decision,) = publisher.decisions
    (results,) = publisher.results_
    assert decision.decision == "hold"
    codes = [r.code for r in decision.reasons]
    assert "partially_released" in codes and "pixel_second_reader_phi" in codes
    assert results.state == "held_for_review"
    assert results.instances_released == len(world.dest.stored) == 2
    assert {results.deidentified_study_uid} == _study_uids(world.dest.stored)


async def test_rerun_whose_fetch_fails_holds_instead_of_failing(tmp_path: Path) -> None:
    """The re-run cannot fetch (source down past its retries): ``hold`` with the error's code
    and ``partially_released``, never ``block`` / ``failed`` with the study at the
    destination."""
    world = World(tmp_path)
    async with JobStore(tmp_path / "dxai.sqlite3") as store:
        killed = await _killed_after_release(world, store)
        real = build_pipeline(world.config)[0]
        parts = (DownSource(world.inputs), world.dest, real)
        publisher = await _incarnation(world, store, parts, first=False)
        job = await store.get(killed.key)
    assert job is not None
    (decision,) = publisher.decisions
    (results,) = publisher.results_
    assert decision.decision == "hold"
    assert [r.code for r in decision.reasons] == ["service_unavailable", "partially_released"]
    assert job.state == results.state == "held_for_review"
    assert results.instances_released == len(world.dest.stored) == 2
    assert {results.deidentified_study_uid} == _study_uids(world.dest.stored)


async def test_rerun_that_passes_resends_the_same_instances(tmp_path: Path) -> None:
    """The re-run passes: the same de-identified instances (keyed UIDs, same key under the
    data dir) are sent again, the job concludes ``proceed`` / ``released`` with one study."""
    world = World(tmp_path)
    async with JobStore(tmp_path / "dxai.sqlite3") as store:
        await _killed_after_release(world, store)
        first = list(world.dest.stored)
        parts = (MemSource(world.inputs), world.dest, build_pipeline(world.config)[0])
        publisher = await _incarnation(world, store, parts, first=False)
    (decision,) = publisher.decisions
    (results,) = publisher.results_
    assert decision.decision == "proceed"
    assert results.state == "released" and results.instances_released == 2
    again = world.dest.stored[len(first) :]
    assert _sop_uids(again) == _sop_uids(first) and len(_sop_uids(first)) == 2
    assert _study_uids(world.dest.stored) == {results.deidentified_study_uid}


@pytest.mark.parametrize("instances_sent", [0, 2])
async def test_no_mark_without_a_send(tmp_path: Path, instances_sent: int) -> None:
    """A job whose run sent nothing has no release mark; one that sent has it (counted)."""
    world = World(tmp_path)
    async with JobStore(tmp_path / "dxai.sqlite3") as store:
        if instances_sent:
            job = await _killed_after_release(world, store)
        else:
            real = build_pipeline(world.config)[0]
            holding = HoldingProcessor(real, {world.inputs[0]})
            await _incarnation(world, store, (MemSource(world.inputs), world.dest, holding), True)
            (job,) = await store.in_state("held_for_review")
        current = await store.get(job.key)
    assert current is not None
    mark = current.release_mark
    assert (mark.instances if mark is not None else 0) == instances_sent


async def test_release_mark_on_a_store_written_before_it(tmp_path: Path) -> None:
    """A job store without the ``released_json`` column gets it when opened; the mark keeps
    the largest count sent and the first known study UID."""
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE jobs (job_key TEXT PRIMARY KEY, exchange_job_id TEXT NOT NULL, "
        "study_uid TEXT NOT NULL, pipeline_version TEXT NOT NULL, state TEXT NOT NULL, "
        "event_json TEXT NOT NULL, traceparent TEXT, decision_json TEXT, "
        "decision_sent INTEGER NOT NULL DEFAULT 0, results_json TEXT, "
        "results_sent INTEGER NOT NULL DEFAULT 0, reason TEXT, "
        "attempts INTEGER NOT NULL DEFAULT 0, created_at REAL NOT NULL, "
        "updated_at REAL NOT NULL, deferred_json TEXT, "
        "deferred_sent INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO jobs (job_key, exchange_job_id, study_uid, pipeline_version, state, "
        "event_json, created_at, updated_at) VALUES ('k1', 'j', '1.2', '1', 'processing', "
        "'{}', 0, 0);"
    )
    con.commit()
    con.close()
    async with JobStore(path) as store:
        job = await store.get("k1")
        assert job is not None and job.release_mark is None
        await store.record_releasing("k1", ReleaseMark("2.25.1", 3))
        await store.record_releasing("k1", ReleaseMark("2.25.1", 6))
        job = await store.record_releasing("k1", ReleaseMark(None, 2))
    assert job.release_mark == ReleaseMark("2.25.1", 6)
