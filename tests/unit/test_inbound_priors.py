"""Priors: the QIDO-RS query plan, candidate parsing, ranking, the report, the gateway's errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from pydantic import ValidationError
from pydicom.dataset import Dataset

from dxai.actors.inbound.patient_match import Demographics
from dxai.actors.inbound.priors import (
    CandidateStudy,
    CurrentStudy,
    body_regions_of,
    candidate_from_json,
    current_study_of,
    priors_report,
    query_plan,
    rank_priors,
)
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.errors import ConfigError, PermanentError, RetriableError
from dxai.configs.schema.priors import PriorsConfig
from dxai.configs.schema.services import (
    DicomWebEndpoint,
    DicomWebSourceSpec,
    LocalSourceSpec,
    SourceSpec,
)
from dxai.daemon.gateways import priors as gateway

CONFIG = PriorsConfig()
TARGET = Demographics(name="MÜLLER^Hans", birth_date="19610503", sex="M", patient_id="A123")
SAME = Demographics(name="Hans Mueller", birth_date="19610503", sex="M", patient_id="A123")
DECOY = Demographics(name="MÜLLER^Hanna", birth_date="19700101", sex="F", patient_id="B9")
CURRENT = CurrentStudy(
    study_uid="1.2.3.100",
    study_date=date(2024, 6, 1),
    modalities=("CT",),
    body_part="CHEST",
    description="CT THORAX",
)


def _candidate(uid: str, **kwargs: Any) -> CandidateStudy:
    values: dict[str, Any] = {
        "patient": SAME,
        "study_date": date(2023, 6, 1),
        "modalities": ("CT",),
        "body_part": "",
        "description": "CT CHEST",
    }
    values.update(kwargs)
    return CandidateStudy(study_uid=uid, **values)


# -- query plan -------------------------------------------------------------------------------


def _keys(plan: list[dict[str, str]]) -> list[tuple[str, str]]:
    searched = ("PatientID", "PatientBirthDate", "PatientName")
    return [(k, v) for q in plan for k, v in q.items() if k in searched]


def test_query_plan_by_id_dob_swapped_dob_and_family_spellings() -> None:
    plan = query_plan(TARGET, CONFIG)
    assert _keys(plan) == [
        ("PatientID", "A123"),
        ("PatientBirthDate", "19610503"),
        ("PatientBirthDate", "19610305"),
        ("PatientName", "MULLER*"),
        ("PatientName", "MUELLER*"),
        ("PatientName", "M*LLER*"),
    ]
    for query in plan:
        fields = query["includefield"].split(",")
        assert {"PatientName", "PatientBirthDate", "IssuerOfPatientID", "StudyDate"} <= set(fields)
        assert "ModalitiesInStudy" in fields


def test_query_plan_since_and_gaps() -> None:
    target = Demographics(name="Hans Mueller", birth_date="19610315")
    plan = query_plan(target, CONFIG, since=date(2020, 1, 2))
    # no ID, no valid swapped date; a name without ^ gives each word
    assert _keys(plan) == [
        ("PatientBirthDate", "19610315"),
        ("PatientName", "HANS*"),
        ("PatientName", "MUELLER*"),
        ("PatientName", "MULLER*"),
    ]
    assert {q["StudyDate"] for q in plan} == {"20200102-"}
    assert query_plan(Demographics(), CONFIG) == []


def test_query_plan_never_sends_a_bare_wildcard() -> None:
    plan = query_plan(Demographics(name="X^Y", patient_id="***"), CONFIG)
    assert plan == []


# -- candidates -------------------------------------------------------------------------------


def test_candidate_from_qido_json() -> None:
    row = {
        "0020000D": {"vr": "UI", "Value": ["1.2.3.4"]},
        "00080020": {"vr": "DA", "Value": ["20230102"]},
        "00080061": {"vr": "CS", "Value": ["ct", "SR", "CT"]},
        "00081030": {"vr": "LO", "Value": ["CT THORAX"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "MULLER^HANS"}]},
        "00100030": {"vr": "DA"},
    }
    candidate = candidate_from_json(row)
    assert candidate is not None
    assert candidate.study_uid == "1.2.3.4"
    assert candidate.study_date == date(2023, 1, 2)
    assert candidate.modalities == ("CT", "SR")
    assert candidate.patient == Demographics(name="MULLER^HANS")
    assert "THORAX" not in repr(candidate)
    assert candidate_from_json({"00080020": {"vr": "DA", "Value": ["20230102"]}}) is None


def test_current_study_of_view() -> None:
    header = Dataset()
    header.StudyDate = "20240601"
    header.Modality = "CT"
    header.BodyPartExamined = "CHEST"
    header.StudyDescription = "CT THORAX"
    ref = InstanceRef(header=header, load=lambda: header, size_bytes=1, transfer_syntax="1.2")
    view = StudyView("1.2.3.100", (SeriesView("1.2.3.101", (ref,)),))
    assert current_study_of(view) == CURRENT


def test_body_regions() -> None:
    assert body_regions_of(["BRAIN W/O CONTRAST"], CONFIG) == {"head"}
    assert body_regions_of(["CHEST_TO_PELVIS"], CONFIG) == {"chest", "pelvis"}
    assert body_regions_of(["Thorax, Lunge"], CONFIG) == {"chest"}
    assert body_regions_of(["", "XYZ"], CONFIG) == frozenset()
    custom = PriorsConfig(body_regions={"Schädel": "head"})
    assert body_regions_of(["CT SCHADEL"], custom) == {"head"}
    with pytest.raises(ValidationError):
        PriorsConfig(body_regions={"--": "head"})


# -- ranking ----------------------------------------------------------------------------------


def test_current_study_decoy_and_duplicates_excluded() -> None:
    candidates = [
        _candidate(CURRENT.study_uid),
        _candidate("1.2.3.1"),
        _candidate("1.2.3.1", modalities=("MR",)),
        _candidate("1.2.3.2", patient=DECOY),
    ]
    priors = rank_priors(TARGET, CURRENT, candidates, CONFIG)
    assert [p.study_uid for p in priors] == ["1.2.3.1"]
    assert priors[0].modalities == ("CT",)
    assert priors[0].match_score >= CONFIG.min_match_score
    assert "birth date exact" in priors[0].match_explanation


def test_ranked_by_modality_then_region_then_date() -> None:
    candidates = [
        _candidate("1.1", modalities=("MR",), description="MR THORAX", study_date=date(2024, 5, 1)),
        _candidate("1.2", description="CT HEAD", study_date=date(2024, 5, 1)),
        _candidate("1.3", description="CT CHEST", study_date=date(2020, 1, 1)),
        _candidate("1.4", description="CT LUNG", study_date=date(2023, 1, 1)),
        _candidate("1.5", modalities=("MR",), description="MR BRAIN", study_date=date(2024, 5, 1)),
    ]
    priors = rank_priors(TARGET, CURRENT, candidates, CONFIG)
    assert [p.study_uid for p in priors] == ["1.4", "1.3", "1.2", "1.1", "1.5"]
    assert priors[0].relevance_explanation[:2] == ("same modality", "same body region (chest)")
    assert priors[2].relevance_explanation[1] == "other body region"
    assert priors[3].relevance_explanation[0] == "other modality"
    assert [p.relevance for p in priors] == sorted((p.relevance for p in priors), reverse=True)


def test_patient_score_ranks_before_relevance() -> None:
    weaker = Demographics(name="hans^müller", birth_date="19610305", sex="M")
    candidates = [
        _candidate("1.1", patient=weaker, description="CT CHEST"),
        _candidate("1.2", modalities=("US",), description="US KNEE"),
    ]
    priors = rank_priors(TARGET, CURRENT, candidates, CONFIG)
    assert [p.study_uid for p in priors] == ["1.2", "1.1"]
    assert priors[0].match_score > priors[1].match_score
    assert priors[0].relevance < priors[1].relevance


def test_lookback_future_and_max_priors() -> None:
    candidates = [
        _candidate("1.1", study_date=date(2024, 7, 1)),  # after the current study
        _candidate("1.2", study_date=date(2014, 1, 1)),  # beyond lookback
        _candidate("1.3", study_date=date(2024, 1, 1)),
        _candidate("1.4", study_date=None),
        _candidate("1.5", study_date=date(2022, 1, 1)),
    ]
    config = PriorsConfig(lookback_days=3000, max_priors=2)
    priors = rank_priors(TARGET, CURRENT, candidates, config)
    assert [p.study_uid for p in priors] == ["1.3", "1.5"]
    everything = rank_priors(TARGET, CURRENT, candidates, PriorsConfig(lookback_days=3000))
    assert [p.study_uid for p in everything] == ["1.3", "1.5", "1.4"]
    assert "study date unknown" in everything[2].relevance_explanation


def test_min_match_score_from_config() -> None:
    name_only = _candidate("1.1", patient=Demographics(name="MULLER^HANS"))
    assert rank_priors(TARGET, CURRENT, [name_only], CONFIG) == ()
    lenient = PriorsConfig(min_match_score=0.5)
    assert len(rank_priors(TARGET, CURRENT, [name_only], lenient)) == 1


# -- report -----------------------------------------------------------------------------------


def test_report_found_has_counts_and_uids_only() -> None:
    candidates = [_candidate("1.2.3.1"), _candidate("1.2.3.2", description="CT THORAX secret")]
    report = priors_report(rank_priors(TARGET, CURRENT, candidates, CONFIG))
    assert report.task == "priors"
    assert report.status == "passed"
    assert report.counts == {"priors": 2}
    (finding,) = report.findings
    assert finding.code == "priors.found"
    assert finding.severity == "info"
    assert finding.value == 2.0
    assert "1.2.3.1" in finding.message and "1.2.3.2" in finding.message
    for phi in ("secret", "THORAX", "MUELLER", "Hans", "A123", "1961", "2023"):
        assert phi not in finding.message + report.detail


def test_report_none() -> None:
    report = priors_report(())
    assert [f.code for f in report.findings] == ["priors.none"]
    assert report.findings[0].severity == "info"
    assert report.counts == {"priors": 0}
    assert not report.holds


def test_config_defaults_and_validation() -> None:
    config = PriorsConfig()
    assert config.enabled and config.archive == "default" and not config.retrieve
    assert config.body_regions["brain"] == "head"
    assert config.body_regions["lung"] == "chest"
    with pytest.raises(ValidationError):
        PriorsConfig(name_weight=0, birth_date_weight=0, patient_id_weight=0, sex_weight=0)
    with pytest.raises(ValidationError):
        PriorsConfig(min_match_score=1.5)
    with pytest.raises(ValidationError):
        PriorsConfig.model_validate({"unknown_key": 1})


# -- gateway (mocked transport) ---------------------------------------------------------------

ENDPOINT = DicomWebEndpoint(base_url="http://archive.test/dicom-web", username="u")


def _row(uid: str, demographics: Demographics, study_date: str = "20230601") -> dict[str, Any]:
    return {
        "0020000D": {"vr": "UI", "Value": [uid]},
        "00080020": {"vr": "DA", "Value": [study_date]},
        "00080061": {"vr": "CS", "Value": ["CT"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": demographics.name}]},
        "00100020": {"vr": "LO", "Value": [demographics.patient_id]},
        "00100030": {"vr": "DA", "Value": [demographics.birth_date]},
        "00100040": {"vr": "CS", "Value": [demographics.sex]},
    }


Handler = Callable[[httpx.Request], httpx.Response]


def _mock(monkeypatch: pytest.MonkeyPatch, handler: Handler) -> list[httpx.Request]:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    def client(endpoint: DicomWebEndpoint) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=endpoint.base_url,
            transport=httpx.MockTransport(record),
            auth=httpx.BasicAuth("u", "p"),
        )

    monkeypatch.setattr(gateway, "_client", client)
    return seen


async def test_search_priors_dedups_and_ranks(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [_row("1.2.3.1", SAME), _row("1.2.3.2", DECOY), _row(CURRENT.study_uid, TARGET)]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=json.dumps(rows).encode())

    seen = _mock(monkeypatch, handler)
    config = PriorsConfig(max_results_per_query=7)
    priors = await gateway.search_priors(ENDPOINT, TARGET, CURRENT, config)
    assert [p.study_uid for p in priors] == ["1.2.3.1"]
    assert len(seen) == len(query_plan(TARGET, config))
    for request in seen:
        assert request.url.host == "archive.test"
        assert request.url.path == "/dicom-web/studies"
        assert request.headers["Accept"] == "application/dicom+json"
        params = dict(parse_qsl(urlsplit(str(request.url)).query))
        assert params["limit"] == "7"
        assert params["StudyDate"].endswith("-")
    raw = b"\n".join(r.url.raw_path for r in seen)
    assert b"PatientName=M*LLER*" in raw  # wildcard and comma not percent-escaped
    assert b"includefield=PatientName,PatientID," in raw


async def test_search_priors_disabled_sends_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _mock(monkeypatch, lambda request: httpx.Response(500))
    config = PriorsConfig(enabled=False)
    assert await gateway.search_priors(ENDPOINT, TARGET, CURRENT, config) == ()
    assert seen == []


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (503, gateway.PriorsArchiveUnavailableError),
        (429, gateway.PriorsArchiveUnavailableError),
        (400, gateway.PriorsQueryRefusedError),
        (401, gateway.PriorsQueryRefusedError),
    ],
)
async def test_failing_query_raises_phi_free(
    monkeypatch: pytest.MonkeyPatch, status: int, error: type[Exception]
) -> None:
    _mock(monkeypatch, lambda request: httpx.Response(status, text="MÜLLER A123 not allowed"))
    with pytest.raises(error) as info:
        await gateway.search_priors(ENDPOINT, TARGET, CURRENT, CONFIG)
    retriable = status >= 429
    assert isinstance(info.value, RetriableError if retriable else PermanentError)
    _assert_phi_free(str(info.value))


async def test_archive_down_is_retriable(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError(f"cannot reach {request.url}", request=request)

    _mock(monkeypatch, refuse)
    with pytest.raises(gateway.PriorsArchiveUnavailableError) as info:
        await gateway.search_priors(ENDPOINT, TARGET, CURRENT, CONFIG)
    assert info.value.retriable
    _assert_phi_free(str(info.value))


async def test_not_json_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    _mock(monkeypatch, lambda request: httpx.Response(200, text="<html>MÜLLER</html>"))
    with pytest.raises(gateway.PriorsQueryRefusedError) as info:
        await gateway.search_priors(ENDPOINT, TARGET, CURRENT, CONFIG)
    _assert_phi_free(str(info.value))


def _assert_phi_free(message: str) -> None:
    for phi in ("MÜLLER", "MULLER", "Hans", "A123", "19610503"):
        assert phi.lower() not in message.lower()


def test_priors_endpoint_from_sources() -> None:
    spec = DicomWebSourceSpec(kind="dicomweb", base_url="http://archive.test/dicom-web")
    sources: dict[str, SourceSpec] = {
        "default": spec,
        "files": LocalSourceSpec(kind="local", root="/data"),
    }
    assert gateway.priors_endpoint(sources, CONFIG) is spec
    with pytest.raises(ConfigError):
        gateway.priors_endpoint(sources, PriorsConfig(archive="files"))
    with pytest.raises(ConfigError):
        gateway.priors_endpoint(sources, PriorsConfig(archive="missing"))
