"""The policy end to end (embedded daemon, the real Orthancs): a destination rule holds a study
for review with nothing at the destination; a consent rule holds a study without consent
(``consent_missing``) and releases one whose consent is in the consent folder."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
from daemon_helpers import embedded
from pydicom.dataset import Dataset

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle
from dxai.daemon.audit import FILE_NAME as AUDIT_FILE
from dxai.daemon.audit import read_records, verify_log

pytestmark = pytest.mark.integration

DEADLINE_S = 120.0
DESTINATION = "exchange-a"


def _config(tmp: Path, orthancs: Any, then: dict[str, Any], **policy: Any) -> DxaiConfig:
    rule = {"name": "exchange-a-governed", "match": {"destination": [DESTINATION]}, "then": then}
    return DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(tmp)},
            "deid": {"pixels": "never"},
            "embedded": {"dicom_port": 0, "http_port": 0, "mllp_port": 0},
            "metrics": {"enabled": False},
            "source_dicomweb": {"base_url": orthancs.source.dicomweb_url},
            "destinations": {
                DESTINATION: {"kind": "dicomweb", "base_url": orthancs.dest.dicomweb_url}
            },
            "policy": {"rules": [rule], **policy},
        }
    )


async def _upload(orthancs: Any, ds: Dataset) -> None:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    async with httpx.AsyncClient(base_url=orthancs.source.base_url) as http:
        (await http.post("/instances", content=buffer.getvalue())).raise_for_status()


async def _run_one(handle: DaemonHandle, ds: Dataset, job: str) -> dict[str, Any]:
    """Post one event through the webhook; the job's results once it concluded."""
    assert handle.ports is not None
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": str(ds.StudyInstanceUID),
        "destination": DESTINATION,
        "exchange_job_id": job,
        "source": {"kind": "dicomweb"},
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{handle.ports.http}") as http:
        answer = await http.post("/events", content=json.dumps(event))
        assert answer.status_code == 202, answer.text
    end = time.monotonic() + DEADLINE_S
    while True:
        files = list((handle.results / "results").glob("*.json"))
        unfinished = await handle.store.unfinished()
        if files and not unfinished:
            return json.loads(files[0].read_text())
        if time.monotonic() > end:
            pytest.fail("the job did not conclude before the deadline")
        await asyncio.sleep(0.2)


def _decision(handle: DaemonHandle) -> dict[str, Any]:
    (path,) = (handle.results / "decisions").glob("*.json")
    return dict(json.loads(path.read_text()))


async def test_destination_rule_forces_review(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset]
) -> None:
    ds = make_ct()
    await _upload(clean_orthanc, ds)
    then = {"review": {"required_always": True}, "review_timeout_s": 3600}
    async with embedded(_config(tmp_path, clean_orthanc, then)) as handle:
        results = await _run_one(handle, ds, "policy-review-1")
        assert handle.review is not None
        held = await handle.review.service.list_held()
    assert results["state"] == "held_for_review" and results["instances_released"] == 0
    assert results["certificate"]["policy_rules"] == ["exchange-a-governed"]
    decision = _decision(handle)
    assert decision["decision"] == "hold"
    assert [r["code"] for r in decision["reasons"]] == ["review_required"]
    assert clean_orthanc.dest.instance_count() == 0  # nothing at the destination
    (kept,) = held
    assert kept["reasons"] == ["review_required"] and kept["review"] == "pending"
    assert kept["instances_passed"] == 1
    records = list(read_records(tmp_path / AUDIT_FILE))
    assert verify_log(tmp_path / AUDIT_FILE).ok
    (record,) = [r for r in records if r.kind == "decision"]
    assert record.data["policy_rules"] == ["exchange-a-governed"]
    assert "release" not in [r.kind for r in records]


def _consent(patient_id: str) -> dict[str, Any]:
    scope = {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": "research"}
    return {
        "resourceType": "Consent",
        "status": "active",
        "scope": {"coding": [scope]},
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"identifier": {"value": patient_id}},
        "provision": {"type": "permit", "period": {"start": "2020-01-01"}},
    }


async def _consent_run(
    tmp: Path, orthancs: Any, ds: Dataset, consents: list[dict[str, Any]], job: str
) -> tuple[DaemonHandle, dict[str, Any]]:
    folder = tmp / "consents"
    folder.mkdir()
    for n, resource in enumerate(consents):
        (folder / f"consent-{n}.json").write_text(json.dumps(resource))
    then = {"profile": "research_longitudinal", "consent": {"scope": ["research"]}}
    source = {"kind": "folder", "folder": str(folder)}
    config = _config(tmp / "state", orthancs, then, consent_source=source)
    async with embedded(config) as handle:
        results = await _run_one(handle, ds, job)
    return handle, results


async def test_missing_consent_holds_the_study(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset]
) -> None:
    ds = make_ct()
    await _upload(clean_orthanc, ds)
    other = _consent("someone-else")
    handle, results = await _consent_run(tmp_path, clean_orthanc, ds, [other], "consent-1")
    assert results["state"] == "held_for_review"
    tasks = {t["task"]: t for t in results["tasks"]}
    assert tasks["consent"]["status"] == "held" and tasks["consent"]["detail"] == "consent_missing"
    assert [r["code"] for r in _decision(handle)["reasons"]] == ["consent_missing"]
    assert clean_orthanc.dest.instance_count() == 0
    text = (tmp_path / "state" / AUDIT_FILE).read_bytes()
    assert str(ds.PatientID).encode() not in text


async def test_valid_consent_releases_the_study(
    tmp_path: Path, clean_orthanc: Any, make_ct: Callable[[], Dataset]
) -> None:
    ds = make_ct()
    await _upload(clean_orthanc, ds)
    valid = _consent(str(ds.PatientID))
    handle, results = await _consent_run(tmp_path, clean_orthanc, ds, [valid], "consent-2")
    assert results["state"] == "released" and results["instances_released"] == 1
    assert results["certificate"]["profile"] == "research_longitudinal"
    tasks = {t["task"]: t for t in results["tasks"]}
    assert tasks["consent"]["status"] == "passed"
    assert _decision(handle)["decision"] == "proceed"
    assert clean_orthanc.dest.instance_count() == 1
