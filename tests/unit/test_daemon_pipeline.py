"""The pipeline core with in-memory gateways: outputs, idempotency, DLQ, deadlines, resume."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Sequence
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dxai.actors.outbound import InstanceOutcome, ProcessorInfo, build_pipeline
from dxai.configs.schema.root import DxaiConfig, PipelineConfig
from dxai.daemon.events import DecisionEvent, ResultsEvent, StudyEvent
from dxai.daemon.gateways import StoreReport, StudyNotFoundError
from dxai.daemon.jobs import JobStore
from dxai.daemon.pipeline import (
    Pipeline,
    PipelineParts,
    RetryPolicy,
)
from dxai.observability.metrics import Sensor
from dxai.observability.tracing import TraceContext

CT = get_testdata_file("CT_small.dcm")
assert CT is not None
RAW = Path(CT).read_bytes()


def _another(raw: bytes) -> bytes:
    """Another instance of the same series (a new SOP Instance UID)."""
    ds = pydicom.dcmread(BytesIO(raw))
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


STUDY = str(pydicom.dcmread(CT).StudyInstanceUID)


class MemSource:
    def __init__(self, instances: list[bytes], missing: bool = False) -> None:
        self.instances = instances
        self.missing = missing

    async def list_series(self, study_uid: str) -> list[str]:
        if self.missing:
            raise StudyNotFoundError("not here")
        return ["1.2.3"]

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        for item in self.instances:
            yield item

    async def aclose(self) -> None:
        return None


class MemSink:
    def __init__(self) -> None:
        self.stored: list[bytes] = []

    async def store(self, instances: Sequence[bytes | Path]) -> StoreReport:
        self.stored.extend(i if isinstance(i, bytes) else i.read_bytes() for i in instances)
        return StoreReport(stored=len(instances))

    async def aclose(self) -> None:
        return None


class MemPublisher:
    def __init__(self) -> None:
        self.decisions: list[DecisionEvent] = []
        self.res: list[ResultsEvent] = []
        self.dlq: list[tuple[bytes, str]] = []

    async def decision(self, event: DecisionEvent, ctx: TraceContext) -> None:
        self.decisions.append(event)

    async def results(self, event: ResultsEvent, ctx: TraceContext) -> None:
        self.res.append(event)

    async def dead_letter(self, original: bytes, reason: str, code: str, origin: str) -> None:
        self.dlq.append((original, code))


class GatedProcessor:
    """Blocks in the worker thread until released (to test the decision deadline)."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.waiting = False
        self.info = ProcessorInfo(profile="test", options=(), pixel_mode="never")
        self.pixels = None

    def process(self, raw: bytes | Path, *, scan: bool = True) -> InstanceOutcome:
        data = raw if isinstance(raw, bytes) else raw.read_bytes()
        self.waiting = True
        self.gate.wait(timeout=30)
        return InstanceOutcome(status="passed", data=data, study_uid_out="2.25.9")


def _event(job: str = "job-1") -> bytes:
    return json.dumps(
        {
            "event_type": "study_received",
            "study_uid": STUDY,
            "destination": "dest",
            "exchange_job_id": job,
            "source": {"kind": "dicomweb"},
        }
    ).encode()


class Rig:
    def __init__(self, tmp: Path, source: MemSource, processor: object = None, **cfg: float):
        config = DxaiConfig.model_validate({"state": {"data_dir": str(tmp)}})
        self.store = JobStore(tmp / "jobs.sqlite3")
        self.sink = MemSink()
        self.pub = MemPublisher()
        self.sensor = Sensor()
        self.parts = PipelineParts(
            store=self.store,
            source_for=lambda _e: source,
            sink=self.sink,
            processor=processor or build_pipeline(config)[0],  # type: ignore[arg-type]
            publisher=self.pub,
            sensor=self.sensor,
            retry=RetryPolicy(max_retries=0),
        )
        self.config = PipelineConfig(cpu_workers=2, **cfg)  # type: ignore[arg-type]


async def test_event_yields_deidentified_output_once(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW, _another(RAW)]))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        assert await pipe.submit(_event(), None, "t/0/0") == "accepted"
        await pipe.drain(30)
        assert await pipe.submit(_event(), None, "t/0/1") == "duplicate"
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["proceed"]
    assert [r.state for r in rig.pub.res] == ["released"]
    res = rig.pub.res[0]
    assert res.certificate is not None and res.certificate.verified
    assert res.deidentified_study_uid not in (None, STUDY)
    out = pydicom.dcmread(BytesIO(rig.sink.stored[0]))
    assert str(out.StudyInstanceUID) == res.deidentified_study_uid
    assert "CompressedSamples" not in str(out.get("PatientName", ""))
    assert rig.sensor.registry.get_sample_value(
        "dxai_events_produced_total", {"topic": "results", "outcome": "ok"}
    )


async def test_malformed_event_goes_to_dead_letter(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW]))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        assert await pipe.submit(b"{not json", None, "t/0/0") == "dead_letter"
    assert rig.pub.dlq == [(b"{not json", "invalid_event")]
    assert rig.pub.decisions == []


async def test_unfetchable_study_blocks_and_dead_letters(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([], missing=True))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    assert [code for _raw, code in rig.pub.dlq] == ["study_not_found"]
    assert rig.pub.dlq[0][0] == _event()
    assert [d.decision for d in rig.pub.decisions] == ["block"]
    assert [r.state for r in rig.pub.res] == ["failed"]


async def test_garbage_instance_fails_closed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW, b"not dicom at all"]))
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["hold"]
    assert rig.pub.res[0].instances_released == 0  # per-study release: nothing sent
    assert rig.sink.stored == []


async def test_series_release_streams_what_passed(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW, b"not dicom at all"]))
    rig.config = rig.config.model_copy(update={"release": "series"})
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await pipe.drain(30)
    assert [d.decision for d in rig.pub.decisions] == ["hold"]
    assert rig.pub.res[0].instances_released == 1 and len(rig.sink.stored) == 1


async def test_decision_deadline_defers_then_decides(tmp_path: Path) -> None:
    proc = GatedProcessor()
    rig = Rig(tmp_path, MemSource([RAW]), proc, decision_deadline_s=0.2)
    async with rig.store, Pipeline(rig.parts, rig.config) as pipe:
        await pipe.submit(_event(), None, "t/0/0")
        await _until(lambda: bool(rig.pub.decisions))
        assert rig.pub.res == []
        proc.gate.set()
        await pipe.drain(30)
    deferred, final = rig.pub.decisions  # deferred at the deadline, then the final one
    assert deferred.decision == "deferred" and deferred.partial
    assert final.decision == "proceed" and not final.partial
    assert [r.state for r in rig.pub.res] == ["released"]


async def test_restart_resumes_unfinished_job(tmp_path: Path) -> None:
    rig = Rig(tmp_path, MemSource([RAW]))
    async with rig.store:
        ev = StudyEvent.model_validate_json(_event())
        claim = await rig.store.claim(ev.exchange_job_id, ev.study_uid, "1", _event().decode())
        await rig.store.set_state(claim.job.key, "fetching")
        await rig.store.set_state(claim.job.key, "processing")
        async with Pipeline(rig.parts, rig.config) as pipe:
            assert await pipe.resume_unfinished() == 1
            await pipe.drain(30)
            assert await pipe.resume_unfinished() == 0
        job = await rig.store.get(claim.job.key)
    assert job is not None and job.finished and job.state == "released"
    assert len(rig.pub.res) == 1


async def _until(cond: object, timeout_s: float = 10.0) -> None:
    import asyncio
    import time

    end = time.monotonic() + timeout_s
    while not cond():  # type: ignore[operator]
        if time.monotonic() > end:
            pytest.fail("condition not met before the deadline")
        await asyncio.sleep(0.01)
