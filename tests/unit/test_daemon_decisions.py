"""The decision state machine: one final decision that agrees with the results, every job ends,
a restart does not spend the deadline, the outbox retries while the daemon runs."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import generate_uid
from test_daemon_pipeline import (
    RAW,
    STUDY,
    GatedProcessor,
    MemPublisher,
    MemSource,
    Rig,
    _event,
    _until,
)

from dxai.configs.errors import (
    ForeignInstanceError,
    RetrieveIncompleteError,
    ServiceUnavailableError,
)
from dxai.daemon.events import DecisionEvent, StudyEvent
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import Pipeline
from dxai.daemon.pipeline.inbound_fetch import fetch_study
from dxai.daemon.pipeline.staging import Staging
from dxai.observability.tracing import TraceContext


class CrashingSource(MemSource):
    """Raises an error no layer expects (not a project error) while listing the series."""

    async def list_series(self, study_uid: str) -> list[str]:
        raise RuntimeError("driver bug")


class CountedSource(MemSource):
    """A source that proves completeness by count, as the DICOMweb and DIMSE gateways do."""

    counts_instances = True


class ShortSource(MemSource):
    """Every retrieve of the series comes back short (the archive sent fewer instances)."""

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        yield self.instances[0]
        raise RetrieveIncompleteError("series retrieve short by 1 instance")


class FlakyPublisher(MemPublisher):
    """Refuses the first ``failures`` decisions as a down broker would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        if self.failures:
            self.failures -= 1
            raise ServiceUnavailableError("kafka produce: KafkaConnectionError")
        await super().decision(event, ctx)


async def _run(rig: Rig) -> None:
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)


async def test_an_unexpected_exception_still_ends_the_job(tmp_path: Path) -> None:
    rig = Rig(tmp_path, CrashingSource([RAW]))
    await _run(rig)
    assert [(d.decision, d.reasons[0].code) for d in rig.pub.decisions] == [
        ("block", "internal_error")
    ]
    assert [r.state for r in rig.pub.res] == ["failed"]
    assert [code for _raw, code in rig.pub.dlq] == ["internal_error"]
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        assert (await store.count_by_state())["failed"] == 1 and not await store.unfinished()


async def test_a_retrieve_that_stays_short_is_held_never_released(tmp_path: Path) -> None:
    rig = Rig(tmp_path, ShortSource([RAW, RAW]))
    await _run(rig)
    assert [(d.decision, d.reasons[0].code) for d in rig.pub.decisions] == [
        ("hold", "retrieve_incomplete")
    ]
    assert [r.state for r in rig.pub.res] == ["held_for_review"]
    assert rig.sink.stored == []


def _of_another_study() -> bytes:
    ds = pydicom.dcmread(BytesIO(RAW))
    ds.StudyInstanceUID, ds.SOPInstanceUID = generate_uid(), generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


async def test_an_instance_of_another_study_is_never_released(tmp_path: Path) -> None:
    """An archive answering the study's retrieve with another patient's instance: that instance
    is not processed, and the study is held (it was de-identified with this job's keys and
    released under this study)."""
    rig = Rig(tmp_path, MemSource([RAW, _of_another_study(), RAW]))
    await _run(rig)
    assert [(d.decision, d.reasons[0].code) for d in rig.pub.decisions] == [
        ("hold", "foreign_instance")
    ]
    assert [(r.state, r.instances_received, r.instances_released) for r in rig.pub.res] == [
        ("held_for_review", 3, 0)
    ]
    assert rig.sink.stored == []


async def test_an_instance_sent_twice_holds_the_study(tmp_path: Path) -> None:
    """An archive answering with the same instance twice fills the count it said (QIDO-RS
    NumberOfSeriesRelatedInstances, C-GET sub-operations) while another may be missing: the
    repeat is not processed again and the study is held, never released as complete."""
    rig = Rig(tmp_path, CountedSource([RAW, RAW]))
    await _run(rig)
    assert [[r.code for r in d.reasons] for d in rig.pub.decisions] == [["repeated_instance"]]
    assert [d.decision for d in rig.pub.decisions] == ["hold"]
    assert [(r.state, r.instances_received, r.instances_released) for r in rig.pub.res] == [
        ("held_for_review", 2, 0)
    ]
    assert rig.sink.stored == []


async def test_two_copies_in_a_folder_source_are_no_repeat(tmp_path: Path) -> None:
    """A folder source has no count for a repeat to fool: two files of one instance (a copy, a
    re-encoded version) are processed as they were before."""
    rig = Rig(tmp_path, MemSource([RAW, RAW]))
    await _run(rig)
    assert [d.decision for d in rig.pub.decisions] == ["proceed"]
    assert [(r.state, r.instances_released) for r in rig.pub.res] == [("released", 2)]


async def test_outbox_retries_a_down_broker_without_a_restart(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW]))
    rig.parts.publisher = rig.pub = FlakyPublisher(failures=3)
    rig.config = rig.config.model_copy(update={"outbox_retry_initial_s": 0.01})
    await _run(rig)
    assert [d.decision for d in rig.pub.decisions] == ["proceed"]
    assert [r.state for r in rig.pub.res] == ["released"]


def _age(db: Path, seconds: float) -> None:
    con = sqlite3.connect(db)
    with con:
        con.execute("UPDATE jobs SET created_at = ?", (time.time() - seconds,))
    con.close()


async def test_a_restart_does_not_spend_the_deadline(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW]), decision_deadline_s=30)
    async with rig.store:
        ev = StudyEvent.model_validate_json(_event())
        claim = await rig.store.claim(ev.exchange_job_id, ev.study_uid, "1", _event().decode())
        await rig.store.set_state(claim.job.key, "fetching")
    _age(tmp_path / "jobs.sqlite3", 3600)  # admitted an hour ago, then the node died
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        assert await pipe.resume_unfinished() == 1
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["proceed"]  # no deadline hold
    assert [r.state for r in rig.pub.res] == ["released"]


async def test_deferred_is_sent_once_across_a_restart(tmp_path: Path) -> None:
    proc = GatedProcessor()
    rig = Rig(tmp_path, MemSource([RAW]), proc, decision_deadline_s=0.05)
    async with rig.store:  # the first run sent its deferred decision, then the node died
        ev = StudyEvent.model_validate_json(_event())
        claim = await rig.store.claim(ev.exchange_job_id, ev.study_uid, "1", _event().decode())
        await rig.store.set_state(claim.job.key, "fetching")
        await rig.store.record_deferred(claim.job.key, '{"decision": "deferred"}')
        await rig.store.mark_deferred_sent(claim.job.key)
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        assert await pipe.resume_unfinished() == 1
        await _until(lambda: proc.waiting)
        gated = time.monotonic()  # held at the gate well past the 0.05 s decision deadline
        await _until(lambda: time.monotonic() - gated > 0.3)
        proc.gate.set()
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["proceed"]
    assert [r.state for r in rig.pub.res] == ["released"]


async def test_start_sweeps_staging_left_by_finished_jobs(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW]))
    async with rig.store:
        pipe = Pipeline(rig.parts, rig.config)
        stale = pipe.staging.root / ("ab" * 16) / "out"
        stale.mkdir(parents=True)
        (stale / "00000001.dcm").write_bytes(RAW)
        async with pipe:
            assert not (pipe.staging.root / ("ab" * 16)).exists()


async def test_inbound_fetch_refuses_an_instance_of_another_study(tmp_path: Path) -> None:
    area = Staging(tmp_path / "staging", 1 << 30, 1 << 20).open("job-1")
    with pytest.raises(ForeignInstanceError) as refused:
        await fetch_study(MemSource([RAW, _of_another_study()]), STUDY, ["1.2.3"], area)
    assert refused.value.code == "foreign_instance"
    view = await fetch_study(MemSource([RAW, RAW]), STUDY, ["1.2.3"], area)
    assert len(view.series[0].instances) == 2


def test_the_archive_gateways_count_instances_and_folders_do_not() -> None:
    from dxai.daemon.gateways.base import counts_instances
    from dxai.daemon.gateways.dicomweb import DicomWebGateway
    from dxai.daemon.gateways.dimse import DimseSource
    from dxai.daemon.gateways.local import LocalFolderSource

    assert DicomWebGateway.counts_instances and DimseSource.counts_instances
    assert not counts_instances(LocalFolderSource) and not counts_instances(MemSource([]))
