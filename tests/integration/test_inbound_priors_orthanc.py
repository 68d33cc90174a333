"""Priors against the real Orthanc source: differently written records of one patient are found
and ranked, a decoy with a similar name is not, and a prior can be retrieved.

The test's patient is unique per run (random birth date with a valid day/month swap, random ID
suffix), so studies other tests or other runs store never match it.  Only what this test stored
is deleted.  Other tests may empty the source Orthanc meanwhile: a run whose studies vanished
is stored and searched again (at most ``ATTEMPTS`` times).
"""

from __future__ import annotations

import io
import random
import uuid
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.inbound.patient_match import Demographics, demographics_of, swapped_date
from dxai.actors.inbound.priors import CurrentStudy, Prior
from dxai.configs.schema.priors import PriorsConfig
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.priors import find_candidates, retrieve_prior, search_priors

pytestmark = pytest.mark.integration

ATTEMPTS = 3


@dataclass(frozen=True)
class Record:
    """One study to store: who it belongs to (as the archive wrote it) and what it is."""

    name: str
    birth_date: str
    sex: str
    patient_id: str
    study_date: str
    description: str
    body_part: str
    testdata: str = "CT_small.dcm"


def _unique_birth_date(rng: random.Random) -> str:
    """A birth date whose day/month swap is another valid date (day and month 1..12, unequal)."""
    month = rng.randint(1, 12)
    day = rng.choice([d for d in range(1, 13) if d != month])
    return f"{rng.randint(1935, 1985)}{month:02d}{day:02d}"


def _records() -> dict[str, Record]:
    rng = random.Random(uuid.uuid4().int)
    suffix = uuid.uuid4().hex[:8].upper()
    birth = _unique_birth_date(rng)
    decoy_birth = _unique_birth_date(rng)
    while decoy_birth in (birth, swapped_date(birth)):
        decoy_birth = _unique_birth_date(rng)
    swapped = swapped_date(birth)
    assert swapped is not None
    pid = f"A123-{suffix}"
    return {
        "current": Record("MÜLLER^Hans", birth, "M", pid, "20240601", "CT THORAX", "CHEST"),
        # other formatting, same birth date and ID
        "prior1": Record("Hans Mueller", birth, "M", pid, "20230601", "CT CHEST", "CHEST"),
        # names reversed and lower case, day/month swapped, no patient ID
        "prior2": Record(
            "hans^müller", swapped, "M", "", "20220101", "MR BRAIN", "HEAD", "MR_small.dcm"
        ),
        # a similar name, another birth date and ID
        "decoy": Record(
            "MÜLLER^Hanna", decoy_birth, "F", f"B77-{suffix}", "20231201", "CT CHEST", "CHEST"
        ),
    }


def _dataset(record: Record) -> Dataset:
    path = get_testdata_file(record.testdata)
    assert path is not None, f"pydicom test file {record.testdata} is missing"
    ds = dcmread(path)
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.PatientName = record.name
    ds.PatientBirthDate = record.birth_date
    ds.PatientSex = record.sex
    ds.PatientID = record.patient_id
    ds.StudyDate = record.study_date
    ds.StudyDescription = record.description
    ds.BodyPartExamined = record.body_part
    return ds


def _store(client: httpx.Client, ds: Dataset) -> str:
    """POST one instance to Orthanc; its Orthanc study id."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    response = client.post("/instances", content=buffer.getvalue())
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    assert body["Status"] in ("Success", "AlreadyStored")
    return str(body["ParentStudy"])


def _all_present(client: httpx.Client, orthanc_ids: list[str]) -> bool:
    return all(client.get(f"/studies/{oid}").status_code == 200 for oid in orthanc_ids)


async def _search_stored(
    client: httpx.Client, endpoint: DicomWebEndpoint, datasets: dict[str, Dataset]
) -> tuple[tuple[Prior, ...], set[str]]:
    """Store the datasets, search (priors, and every candidate's Study UID); again when another
    test emptied Orthanc meanwhile."""
    current_ds = datasets["current"]
    target = demographics_of(current_ds)
    current = CurrentStudy(
        study_uid=current_ds.StudyInstanceUID,
        study_date=date(2024, 6, 1),
        modalities=("CT",),
        body_part="CHEST",
        description="CT THORAX",
    )
    for _ in range(ATTEMPTS):
        ids = [_store(client, ds) for ds in datasets.values()]
        priors = await search_priors(endpoint, target, current, PriorsConfig())
        candidates = await find_candidates(endpoint, target, PriorsConfig(), since=None)
        if _all_present(client, ids):
            return priors, {c.study_uid for c in candidates}
    pytest.fail(f"the stored studies were deleted by someone else {ATTEMPTS} times")


async def test_priors_found_ranked_decoy_excluded(orthanc_source: Any, tmp_path: Path) -> None:
    records = _records()
    datasets = {key: _dataset(record) for key, record in records.items()}
    assert demographics_of(datasets["prior2"]) == Demographics(
        name="hans^müller", birth_date=records["prior2"].birth_date, sex="M"
    )
    endpoint = DicomWebEndpoint(base_url=orthanc_source.dicomweb_url)
    uid = {key: ds.StudyInstanceUID for key, ds in datasets.items()}
    with orthanc_source.http() as client:
        try:
            priors, candidates = await _search_stored(client, endpoint, datasets)
            # the archive answers with all four (the decoy through the family-name query) ...
            assert set(uid.values()) <= candidates
            # ... and matching keeps the two priors, best first
            found = [p.study_uid for p in priors]
            assert found[:2] == [uid["prior1"], uid["prior2"]]
            assert uid["decoy"] not in found
            assert uid["current"] not in found
            first, second = priors[0], priors[1]
            assert first.match_score > second.match_score >= PriorsConfig().min_match_score
            assert "birth date exact" in first.match_explanation
            assert "birth date day-month swapped" in second.match_explanation
            assert "patient id unknown" in second.match_explanation
            assert first.modalities == ("CT",) and second.modalities == ("MR",)
            assert first.study_date == date(2023, 6, 1)
            assert first.relevance_explanation[0] == "same modality"
            assert second.relevance_explanation[0] == "other modality"

            files = await retrieve_prior(endpoint, first, tmp_path / "prior")
            assert [f.name for f in files] == [f"{datasets['prior1'].SOPInstanceUID}.dcm"]
            fetched = dcmread(files[0])
            assert fetched.StudyInstanceUID == uid["prior1"]
            assert fetched.PatientName == "Hans Mueller"
        finally:
            _delete_studies(client, set(uid.values()))


def _delete_studies(client: httpx.Client, study_uids: set[str]) -> None:
    """Delete the Orthanc studies holding ``study_uids`` (only those: others share Orthanc)."""
    for study_uid in study_uids:
        query = {"Level": "Study", "Query": {"StudyInstanceUID": study_uid}}
        for orthanc_id in client.post("/tools/find", json=query).raise_for_status().json():
            response = client.delete(f"/studies/{orthanc_id}")
            assert response.status_code in (200, 404)
