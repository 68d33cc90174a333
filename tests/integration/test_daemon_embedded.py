"""Embedded mode end to end: storescu -> C-STORE landing zone, webhook, HL7 MLLP (no Kafka)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from daemon_helpers import embedded
from deid_checks import header_text, input_phi, leaked
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle
from dxai.daemon.audit import FILE_NAME as AUDIT_FILE
from dxai.daemon.audit import read_records, verify_log
from dxai.daemon.intake.mllp import END, frame
from dxai.observability.metrics import Sensor

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample-study"
DEADLINE_S = 120.0


def _config(tmp: Path, **extra: Any) -> DxaiConfig:
    data: dict[str, Any] = {
        "mode": "embedded",
        "state": {"data_dir": str(tmp)},
        "deid": {"pixels": "never"},
        "embedded": {
            "dicom_port": 0,
            "http_port": 0,
            "mllp_port": 0,
            "study_quiet_period_s": 1.0,
        },
        "metrics": {"enabled": False},
    }
    data.update(extra)
    return DxaiConfig.model_validate(data)


def _sample_inputs() -> dict[str, Dataset]:
    files = sorted(SAMPLE.rglob("*.dcm"))
    assert files, "tests/data/sample-study is empty"
    return {str(p): pydicom.dcmread(p) for p in files}


async def _storescu(port: int, folder: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        "storescu", "-xy", "+r", "+sd", "+sp", "*.dcm", "-aec", "DXAI",
        "127.0.0.1", str(port), str(folder),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, out.decode(errors="replace")


async def _wait_final(handle: DaemonHandle, jobs: int) -> dict[str, int]:
    end = time.monotonic() + DEADLINE_S
    while True:
        counts = await handle.store.count_by_state()
        active = counts["received"] + counts["fetching"] + counts["processing"]
        pending = await handle.store.unfinished()
        if sum(counts.values()) >= jobs and not active and not pending:
            return counts
        if time.monotonic() > end:
            pytest.fail(f"jobs not finished before the deadline: {counts}")
        await asyncio.sleep(0.2)


def _json_files(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]


async def test_storescu_study_to_results_folder(tmp_path: Path) -> None:
    inputs = _sample_inputs()
    studies = {str(ds.StudyInstanceUID) for ds in inputs.values()}
    async with embedded(_config(tmp_path)) as handle:
        assert handle.ports is not None
        await _storescu(handle.ports.dicom, SAMPLE)
        counts = await _wait_final(handle, len(studies))
    assert counts["released"] == len(studies)
    results = _json_files(handle.results / "results")
    decisions = _json_files(handle.results / "decisions")
    assert sorted(r["study_uid"] for r in results) == sorted(studies)
    assert {d["decision"] for d in decisions} == {"proceed"} and len(decisions) == len(studies)
    assert all(r["certificate"]["verified"] for r in results)
    assert sum(r["instances_released"] for r in results) == len(inputs)
    outputs = sorted((handle.results / "instances").rglob("*.dcm"))
    assert len(outputs) == len(inputs)
    tokens = set().union(*(input_phi(ds) for ds in inputs.values()))
    names = {str(ds.PatientName) for ds in inputs.values()} | {
        str(ds.PatientID) for ds in inputs.values()
    }
    assert all(names)
    out_studies = {r["deidentified_study_uid"] for r in results}
    for path in outputs:
        text = header_text(path)
        assert not leaked(tokens, text), f"{path.name} leaks input PHI"
        assert not any(n in text for n in names)
        assert str(pydicom.dcmread(path).StudyInstanceUID) in out_studies - studies


async def test_storescu_study_to_destination_orthanc(tmp_path: Path, clean_orthanc: Any) -> None:
    inputs = _sample_inputs()
    studies = {str(ds.StudyInstanceUID) for ds in inputs.values()}
    dest = {"base_url": clean_orthanc.dest.dicomweb_url}
    async with embedded(_config(tmp_path, destination_dicomweb=dest)) as handle:
        assert handle.ports is not None
        await _storescu(handle.ports.dicom, SAMPLE)
        await _wait_final(handle, len(studies))
    assert clean_orthanc.dest.instance_count() == len(inputs)
    results = _json_files(handle.results / "results")
    client = clean_orthanc.dest.dicomweb()
    for result in results:
        stored = client.retrieve_study(result["deidentified_study_uid"])
        assert len(stored) == result["instances_released"] > 0
        sent = set(result["certificate"]["instances_sha256"])
        for sop_uid in {str(ds.SOPInstanceUID) for ds in stored}:
            assert _orthanc_sha256(clean_orthanc.dest, sop_uid) in sent
        for ds in stored:
            assert str(ds.PatientName) not in {str(i.PatientName) for i in inputs.values()}
    _check_audit(tmp_path, inputs, len(studies))
    _check_certificates(tmp_path, results)


def _check_certificates(data_dir: Path, results: list[dict[str, Any]]) -> None:
    """Each released study's certificate lists the SHA-256 of what the destination holds and
    points at its decision in the audit chain."""
    decisions = {r.seq: r for r in read_records(data_dir / AUDIT_FILE) if r.kind == "decision"}
    for result in results:
        cert = result["certificate"]
        record = decisions[cert["audit_seq"]]
        assert record.prev_hash == cert["audit_prev_hash"]
        assert record.job_key == result["job_key"]
        assert len(cert["instances_sha256"]) == result["instances_released"]


def _orthanc_sha256(orthanc: Any, sop_uid: str) -> str:
    """SHA-256 of the file Orthanc stored for ``sop_uid`` (as received: Orthanc keeps it)."""
    with httpx.Client(base_url=orthanc.base_url, timeout=30) as http:
        found = http.post(
            "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}
        )
        (instance,) = found.raise_for_status().json()
        data = http.get(f"/instances/{instance}/file").raise_for_status().content
    return hashlib.sha256(data).hexdigest()


def _check_audit(data_dir: Path, inputs: dict[str, Dataset], studies: int) -> None:
    """Every job's intake, fetch, release and decision are in an intact chain, without PHI."""
    records = list(read_records(data_dir / AUDIT_FILE))
    assert verify_log(data_dir / AUDIT_FILE).ok
    kinds = [r.kind for r in records]
    assert kinds[0] == "config_loaded"
    for kind in ("intake", "fetch", "release", "decision"):
        assert kinds.count(kind) == studies, kinds
    released = [r.data for r in records if r.kind == "release"]
    assert sum(d["instances_stored"] for d in released) == len(inputs)
    assert {r.data["decision"] for r in records if r.kind == "decision"} == {"proceed"}
    text = "\n".join(json.dumps(r.as_dict()) for r in records)
    tokens = set().union(*(input_phi(ds) for ds in inputs.values()))
    assert not leaked(tokens, text), "the audit log holds input PHI"


def _orm(control_id: str, study_uid: str | None) -> str:
    segments = [
        f"MSH|^~\\&|RIS|HOSP|DXAI|DXAI|20240101120000||ORM^O01|{control_id}|P|2.3",
        "PID|1||MRN0001||Doe^Jane||19700101|F",
        "ORC|NW|ORD1",
        "OBR|1|ORD1||CT^CT HEAD",
    ]
    if study_uid is not None:
        segments.append(f"ZDS|{study_uid}^RIS^Application^DICOM")
    return "\r".join(segments)


async def _mllp(port: int, message: bytes) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(message)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readuntil(END), 30)
    finally:
        writer.close()
        await writer.wait_closed()
    return reply.decode()


def _msa(reply: str) -> list[str]:
    seg = next(s for s in reply.strip("\x0b\x1c\r").split("\r") if s.startswith("MSA"))
    return seg.split("|")


async def test_mllp_order_triggers_job_and_bad_input_is_nakked(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset]
) -> None:
    ds = make_ct()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    async with httpx.AsyncClient(base_url=clean_orthanc.source.base_url) as http:
        (await http.post("/instances", content=buf.getvalue())).raise_for_status()
    source = {"base_url": clean_orthanc.source.dicomweb_url}
    async with embedded(_config(tmp_path, source_dicomweb=source)) as handle:
        assert handle.ports is not None
        port = handle.ports.mllp
        ack = _msa(await _mllp(port, frame(_orm("CTRL-1", str(ds.StudyInstanceUID)))))
        assert ack[1:3] == ["AA", "CTRL-1"]
        again = _msa(await _mllp(port, frame(_orm("CTRL-1", str(ds.StudyInstanceUID)))))
        assert again[1:3] == ["AA", "CTRL-1"]
        no_study = _msa(await _mllp(port, frame(_orm("CTRL-2", None))))
        assert no_study[1:3] == ["AE", "CTRL-2"]
        garbage = _msa(await _mllp(port, frame("this is not hl7")))
        assert garbage[1] == "AR"
        adt = _orm("CTRL-3", None).replace("ORM^O01", "ADT^A08")
        assert _msa(await _mllp(port, frame(adt)))[1:3] == ["AA", "CTRL-3"]
        counts = await _wait_final(handle, 1)
    assert counts["released"] == 1 and sum(counts.values()) == 1
    results = _json_files(handle.results / "results")
    assert [r["exchange_job_id"] for r in results] == ["hl7-CTRL-1"]
    assert len(list((handle.results / "instances").rglob("*.dcm"))) == 1


async def test_webhook_event_to_job(tmp_path: Path, make_ct: Callable[[], Dataset]) -> None:
    ds = make_ct()
    folder = tmp_path / "in"
    folder.mkdir()
    ds.save_as(folder / "ct.dcm", enforce_file_format=True)
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": str(ds.StudyInstanceUID),
        "destination": "default",
        "exchange_job_id": "hook-1",
        "source": {"kind": "local", "path": str(folder)},
    }
    inbox = {"inbox": {"kind": "local", "root": str(folder)}}
    async with embedded(_config(tmp_path / "state", sources=inbox)) as handle:
        assert handle.ports is not None
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.ports.http}") as http:
            assert (await http.get("/healthz")).status_code == 200
            first = await http.post("/events", content=json.dumps(event))
            assert (first.status_code, first.json()["status"]) == (202, "accepted")
            await _wait_final(handle, 1)
            dup = await http.post("/events", content=json.dumps(event))
            assert (dup.status_code, dup.json()["status"]) == (202, "duplicate")
            bad = await http.post("/events", content=b"{not json")
            assert (bad.status_code, bad.json()["status"]) == (400, "dead_letter")
            assert (await http.get("/nowhere")).status_code == 404
    results = _json_files(handle.results / "results")
    assert [(r["exchange_job_id"], r["state"]) for r in results] == [("hook-1", "released")]
    assert len(list((handle.results / "dlq").glob("*.bin"))) == 1


async def test_demo_sends_sample_study_and_reports(tmp_path: Path) -> None:
    from dxai.daemon.cli.demo import demo_config, run_demo

    config = demo_config(tmp_path, quiet_s=0.5)
    sensor = Sensor()
    report = await run_demo(config, SAMPLE, timeout_s=DEADLINE_S, sensor=sensor)
    inputs = _sample_inputs()
    assert not report.timed_out and report.sent == len(inputs) and report.refused == 0
    assert (
        report.studies == len(report.jobs) == len({ds.StudyInstanceUID for ds in inputs.values()})
    )
    assert sum(j["released"] + j["held"] for j in report.jobs) == len(inputs)
    assert sum(j["released"] for j in report.jobs) >= len(inputs) // 2
    for job in report.jobs:  # local.yaml: pixels auto; held only by the checks, fail closed
        assert (job["decision"] == "proceed") == (job["held"] == 0)
        assert all(r == "deid_verified" or r.startswith(("pixel_", "phi_")) for r in job["reasons"])
    tasks = [t for r in _json_files(tmp_path / "results" / "results") for t in r["tasks"]]
    pixels = [t for t in tasks if t["task"] == "pixels"]
    assert len(pixels) == len(report.jobs) and sum(t["counts"]["boxes_redacted"] for t in pixels)
    released = sorted((tmp_path / "results" / "instances").rglob("*.dcm"))
    assert len(released) == sum(j["released"] for j in report.jobs)
    truth = json.loads((SAMPLE / "ground_truth.json").read_text(encoding="utf-8"))["files"]
    originals = [(f, pydicom.dcmread(SAMPLE / f["path"]).pixel_array) for f in truth]
    for path in released:
        _assert_pixel_phi_filled(pydicom.dcmread(path), originals)
    # the OCR went through the daemon's in-process batcher (both models, real batches)
    for model in ("ppocr_det", "ppocr_rec"):
        batches = sensor.registry.get_sample_value("dxai_batch_size_count", {"model": model})
        assert batches is not None and batches > 0, model


def _region(arr: Any, frames: int, item: dict[str, Any]) -> Any:
    """The pixels (one row each) of the ground-truth box of ``item`` on its frames."""
    x0, y0, x1, y1 = item["box"]
    out = arr[item["frames"], y0:y1, x0:x1] if frames > 1 else arr[y0:y1, x0:x1]
    colour = out.ndim == (4 if frames > 1 else 3)
    return out.reshape(-1, out.shape[-1]) if colour else out.reshape(-1, 1)


def _assert_pixel_phi_filled(out: Dataset, originals: list[tuple[dict[str, Any], Any]]) -> None:
    """A released instance is marked clean and every ground-truth PHI text box is filled."""
    import numpy as np

    assert out.BurnedInAnnotation == "NO"
    assert "113101" in {str(c.CodeValue) for c in out.DeidentificationMethodCodeSequence}
    arr = out.pixel_array
    # the input this output came from: same shape, the most pixels in common
    source, _ = max(
        ((f, a) for f, a in originals if a.shape == arr.shape),
        key=lambda fa: float((fa[1] == arr).mean()),
    )
    for item in (b for b in source["burned_in"] if b["phi"]):
        region = _region(arr, int(source["frames"]), item)
        _values, counts = np.unique(region, axis=0, return_counts=True)
        assert counts.max() / len(region) >= 0.9, (source["path"], item["kind"])


def _send_with_pause(port: int, paths: list[Path], pause_s: float) -> None:
    """One association: half the instances, a pause longer than the quiet period (a sender
    stalled by its disk or still reconstructing), the rest; then release."""
    from pynetdicom import AE

    heads = [pydicom.dcmread(p) for p in paths]
    ae = AE(ae_title="PAUSING")
    for cx in sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in heads}):
        ae.add_requested_context(*cx)
    assoc = ae.associate("127.0.0.1", port, ae_title="DXAI")
    assert assoc.is_established
    try:
        for n, ds in enumerate(heads):
            if n == len(heads) // 2:
                time.sleep(pause_s)  # the scenario itself, not a synchronisation
            assert assoc.send_c_store(ds).Status == 0
    finally:
        assoc.release()


async def test_pause_inside_one_association_gives_one_job(tmp_path: Path) -> None:
    """A study whose sender pauses for 2.5 quiet periods inside its association is one job
    with every instance (it was sealed at the pause and split into two jobs)."""
    inputs = _sample_inputs()
    first_study = str(next(iter(inputs.values())).StudyInstanceUID)
    paths = [Path(p) for p, ds in inputs.items() if str(ds.StudyInstanceUID) == first_study]
    assert len(paths) >= 2
    async with embedded(_config(tmp_path)) as handle:
        assert handle.ports is not None
        await asyncio.to_thread(_send_with_pause, handle.ports.dicom, paths, 2.5)
        counts = await _wait_final(handle, 1)
    assert counts["released"] == 1 and sum(counts.values()) == 1, counts
    (results,) = _json_files(handle.results / "results")
    assert results["study_uid"] == first_study
    assert results["instances_received"] == results["instances_released"] == len(paths)
