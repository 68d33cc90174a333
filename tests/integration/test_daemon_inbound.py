"""The inbound workflow end to end: the embedded daemon, the real Orthanc as the archive.

One study of a patient with two priors stored under differently formatted names and a decoy
patient of a similar name: the daemon fetches the study (WADO-RS), finds both priors (QIDO-RS,
fuzzy patient match) and not the decoy, gives the CT series' missing slice and wrong slice
thickness as QC findings, raises the priority for "acute subdural hemorrhage" (not for "no
acute hemorrhage"), stores a TID 1500 SR back to Orthanc (dciodvfy accepts it, highdicom reads
it) and sends an ORU^R01 to an MLLP server that ACKs it.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

import highdicom as hd
import hl7
import hl7.mllp
import httpx
import numpy as np
import pydicom
import pytest
from daemon_helpers import embedded
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle

DEADLINE_S = 180.0
ORTHANC = "http://127.0.0.1:8042"
ORM = (
    "MSH|^~\\&|RIS|HOSP|DXAI|HOSP|20261207120000||ORM^O01|ORD{n}|P|2.5\r"
    "PID|1||{pid}^^^HOSP||{name}||{dob}|M\r"
    "ORC|NW|ORD{n}\r"
    "OBR|1|ORD{n}||CTHEAD^CT HEAD^L|||||||||{history}\r"
)


@dataclass
class Patient:
    """One test patient (unique per run: the archive is shared with other tests)."""

    name: str
    dob: str
    pid: str
    sex: str = "M"


@dataclass
class Stored:
    """What a test stored in Orthanc (deleted at the end)."""

    studies: list[str] = field(default_factory=list)


def _ct_slice(
    patient: Patient,
    study: str,
    series: str,
    number: int,
    *,
    z: float,
    thickness: float,
    description: str,
    date: str,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.SpecificCharacterSet = "ISO_IR 192"  # UTF-8: the names hold umlauts
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientName, ds.PatientID, ds.PatientBirthDate = patient.name, patient.pid, patient.dob
    ds.PatientSex = patient.sex
    if patient.pid:
        ds.IssuerOfPatientID = "HOSP"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = date, "120000", date
    ds.AccessionNumber, ds.StudyID, ds.ReferringPhysicianName = f"A{number:04d}", "1", "Ref^Doc"
    ds.Modality, ds.StudyDescription, ds.SeriesDescription = "CT", description, "AXIAL NC"
    ds.BodyPartExamined, ds.Manufacturer = "HEAD", "ACME"
    ds.SeriesNumber, ds.InstanceNumber = 2, number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [-100.0, -100.0, z]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing, ds.SliceThickness, ds.KVP = [0.5, 0.5], thickness, 120
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=[study, "frame of reference"])
    ds.Rows = ds.Columns = 32
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    rng = np.random.default_rng(number)
    ds.PixelData = rng.integers(900, 1100, (32, 32), dtype=np.uint16).tobytes()
    return ds


def _study(
    patient: Patient,
    *,
    date: str,
    slices: int = 12,
    thickness: float = 2.5,
    missing: frozenset[int] = frozenset(),
    description: str = "CT HEAD STROKE",
) -> tuple[str, list[Dataset]]:
    study, series = generate_uid(), generate_uid()
    out = [
        _ct_slice(
            patient,
            study,
            series,
            n,
            z=n * thickness,
            thickness=thickness,
            description=description,
            date=date,
        )
        for n in range(1, slices + 1)
        if n not in missing
    ]
    return study, out


def _store(datasets: list[Dataset], stored: Stored) -> None:
    with httpx.Client(base_url=ORTHANC, timeout=30.0) as client:
        for ds in datasets:
            buf = BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            answer = client.post("/instances", content=buf.getvalue()).raise_for_status().json()
            if answer["ParentStudy"] not in stored.studies:
                stored.studies.append(answer["ParentStudy"])


@pytest.fixture
def stored() -> Iterator[Stored]:
    """Orthanc studies this test stored, deleted afterwards (the SR's study among them)."""
    record = Stored()
    yield record
    with httpx.Client(base_url=ORTHANC, timeout=30.0) as client:
        for orthanc_id in record.studies:
            client.delete(f"/studies/{orthanc_id}")


@dataclass
class Ris:
    """An MLLP server that ACKs every message (AA) and keeps what it received."""

    port: int = 0
    messages: list[str] = field(default_factory=list)


@pytest.fixture
async def ris() -> AsyncIterator[Ris]:
    record = Ris()

    async def handle(reader: Any, writer: Any) -> None:
        try:
            while not writer.is_closing():
                message = await reader.readmessage()
                record.messages.append(str(message))
                writer.writemessage(message.create_ack("AA"))
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            writer.close()

    server = await hl7.mllp.start_hl7_server(handle, host="127.0.0.1", port=0, encoding="utf-8")
    record.port = server.sockets[0].getsockname()[1]
    try:
        yield record
    finally:
        server.close()
        await server.wait_closed()


def _config(tmp: Path, ris_port: int) -> DxaiConfig:
    return DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp)},
            "deid": {"pixels": "never"},
            "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
            "metrics": {"enabled": False},
            "sources": {"default": {"kind": "dicomweb", "base_url": ORTHANC + "/dicom-web"}},
            "destinations": {"archive": {"kind": "dicomweb", "base_url": ORTHANC + "/dicom-web"}},
            "inbound": {
                "enabled": True,
                "sr_destination": "archive",
                "hl7": {"host": "127.0.0.1", "port": ris_port, "ack_timeout_s": 10.0},
            },
        }
    )


def _event(study: str, job: str, patient: Patient, history: str) -> bytes:
    orm = ORM.format(
        n=job[-6:], pid=patient.pid, name=patient.name, dob=patient.dob, history=history
    )
    return json.dumps(
        {
            "event_type": "study_received",
            "study_uid": study,
            "destination": "archive",
            "exchange_job_id": job,
            "source": {"name": "default"},
            "hl7": orm,
        }
    ).encode()


async def _results(handle: DaemonHandle, job: str) -> dict[str, Any]:
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        rows = [p for p in (handle.results / "results").glob("*.json") if job in p.read_text()]
        if rows:
            return dict(json.loads(rows[0].read_text()))
        await asyncio.sleep(0.2)
    pytest.fail(f"no results for {job}")


def _patients() -> tuple[Patient, Patient, Patient, Patient]:
    tag = uuid.uuid4().hex[:6].upper()
    dob = f"19{int(tag[:2], 16) % 60 + 30:02d}0305"  # day and month swap to a valid date
    current = Patient(f"MÜLLER^HANS^{tag}", dob, f"P{tag}")
    prior_1 = Patient(f"Mueller^Hans^{tag}", dob, f"P{tag}")  # transliterated, other case
    prior_2 = Patient(f"HANS {tag} MULLER", dob[:4] + dob[6:] + dob[4:6], "")  # no ID
    decoy = Patient(f"MÜLLER^HANNA^{tag}", "19800101", f"D{tag}", "F")
    return current, prior_1, prior_2, decoy


async def test_inbound_study_gets_qc_priority_priors_sr_and_oru(
    tmp_path: Path, stored: Stored, ris: Ris
) -> None:
    current, prior_1, prior_2, decoy = _patients()
    study, series = _study(current, date="20261207", thickness=6.0, missing=frozenset({6}))
    prior_ids = []
    for patient, date in ((prior_1, "20250101"), (prior_2, "20240101")):
        uid, prior = _study(patient, date=date, slices=3)
        prior_ids.append(uid)
        _store(prior, stored)
    decoy_uid, decoy_series = _study(decoy, date="20250601", slices=3)
    _store([*series, *decoy_series], stored)
    job = f"inb-{uuid.uuid4().hex[:10]}"
    async with embedded(_config(tmp_path, ris.port)) as handle:
        raw = _event(study, job, current, "acute subdural hemorrhage after fall")
        assert await handle.pipeline.submit(raw, None, "http") == "accepted"
        results = await _results(handle, job)
    inbound = results["inbound"]
    codes = {f["code"] for f in inbound["findings"]}
    assert {"qc.slice_thickness_out_of_range"} <= codes
    assert codes & {"qc.slice_gap", "qc.missing_instance_number"}
    assert inbound["priority"] == "stat"
    ranked = [p["study_uid"] for p in inbound["priors"]]
    assert set(ranked[:2]) == set(prior_ids) and decoy_uid not in ranked
    assert results["state"] == "held_for_review"  # the missing slice is blocking
    _check_sr(results, study, stored)
    _check_oru(ris, study)


def _check_sr(results: dict[str, Any], study: str, stored: Stored) -> None:
    (sop_uid,) = results["sr_uids"]
    with httpx.Client(base_url=ORTHANC, timeout=30.0) as client:
        found = (
            client.post(
                "/tools/find", json={"Level": "Instance", "Query": {"SOPInstanceUID": sop_uid}}
            )
            .raise_for_status()
            .json()
        )
        assert len(found) == 1, "the SR is not in the archive"
        data = client.get(f"/instances/{found[0]}/file").raise_for_status().content
    ds = pydicom.dcmread(BytesIO(data))
    assert ds.StudyInstanceUID == study
    sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
    assert sr.SOPInstanceUID == sop_uid
    path = Path(results["job_key"][:16] + ".dcm")
    path.write_bytes(data)
    try:
        check = subprocess.run(["dciodvfy", str(path)], capture_output=True)
    finally:
        path.unlink()
    said = check.stderr.decode("utf-8", "replace").splitlines()
    errors = [line for line in said if line.startswith("Error")]
    assert not errors, errors


def _check_oru(ris: Ris, study: str) -> None:
    assert len(ris.messages) == 1
    message = hl7.parse(ris.messages[0].replace("\n", "\r"))
    assert str(message.segment("MSH")[9]).startswith("ORU^R01")
    assert str(message.segment("OBR")[5]) in ("S", "") or "S" in str(message.segment("ORC")[7])
    text = ris.messages[0]
    assert study in text  # the RP OBX points at the SR in the study


async def test_negated_history_does_not_raise_priority(
    tmp_path: Path, stored: Stored, ris: Ris
) -> None:
    current, *_ = _patients()
    # "stroke" in a study description is itself a STAT reason: a plain head CT here
    study, series = _study(current, date="20261207", thickness=2.5, description="CT HEAD")
    _store(series, stored)
    job = f"inb-{uuid.uuid4().hex[:10]}"
    async with embedded(_config(tmp_path, ris.port)) as handle:
        raw = _event(study, job, current, "headache. no acute hemorrhage")
        assert await handle.pipeline.submit(raw, None, "http") == "accepted"
        results = await _results(handle, job)
    assert results["inbound"]["priority"] == "routine"
    assert results["state"] == "released"
    blocking = [f for f in results["inbound"]["findings"] if f["severity"] == "blocking"]
    assert not blocking
