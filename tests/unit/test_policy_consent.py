"""Consent before release: FHIR R4 Consent judged by status, scope, provision and period; read
from a folder and from a FHIR server (a small local HTTP server this test starts); the patient
identifier stays out of URLs, logs and messages."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs

import pytest
from fhir.resources.R4B.consent import Consent

from dxai.configs.schema.policy import ConsentSourceConfig
from dxai.daemon.policy.consent import (
    FhirConsentSource,
    FolderConsentSource,
    check_consent,
    evaluate,
)
from dxai.daemon.policy.facts import HeaderFacts

pytestmark = pytest.mark.unit

PATIENT = "PAT-558812"
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
SYSTEM = "urn:oid:1.2.3.4"


def consent(
    patient: str = PATIENT,
    scope: str = "research",
    status: str = "active",
    start: str | None = "2024-01-01",
    end: str | None = "2026-01-01",
    provision: str = "permit",
) -> dict[str, Any]:
    """A FHIR R4 Consent resource (JSON) for ``patient``."""
    period = {k: v for k, v in (("start", start), ("end", end)) if v is not None}
    return {
        "resourceType": "Consent",
        "status": status,
        "scope": {
            "coding": [
                {"system": "http://terminology.hl7.org/CodeSystem/consentscope", "code": scope}
            ]
        },
        "category": [{"coding": [{"system": "http://loinc.org", "code": "57016-8"}]}],
        "patient": {"identifier": {"system": SYSTEM, "value": patient}},
        "dateTime": "2024-01-01T00:00:00Z",
        "provision": {"type": provision, "period": period},
    }


def _judge(*docs: dict[str, Any], now: datetime = NOW) -> str:
    return evaluate([Consent.model_validate(d) for d in docs], ("research",), now).state


def test_a_consent_is_valid_in_scope_active_permitting_and_in_its_period() -> None:
    assert _judge(consent()) == "valid"
    assert _judge(consent(end=None)) == "valid"
    assert _judge(consent(end="2025-06-01")) == "valid"  # a date ends at the end of that day
    assert _judge(consent(end="2025-05")) == "expired"  # a month ends with the month
    assert _judge(consent(end="2025-05-31T23:59:59+00:00")) == "expired"
    assert _judge(consent(start="2025-07-01")) == "missing"  # not yet
    assert _judge(consent(scope="treatment")) == "missing"
    assert _judge(consent(status="inactive")) == "missing"
    assert _judge(consent(provision="deny")) == "missing"
    assert _judge() == "missing"
    assert _judge(consent(end="2025-01-01"), consent()) == "valid"  # one valid is enough


async def test_folder_source_finds_the_patients_consents(tmp_path: Path) -> None:
    folder = tmp_path / "consents"
    folder.mkdir()
    (folder / "a.json").write_text(json.dumps(consent(end="2025-01-01")))
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": consent()}]}
    (folder / "b.json").write_text(json.dumps(bundle))
    (folder / "other.json").write_text(json.dumps(consent(patient="someone-else")))
    (folder / "broken.json").write_text("{not json")
    source = FolderConsentSource(folder, SYSTEM)
    found = await source.find(HeaderFacts(patient_id=PATIENT))
    assert len(found) == 2
    verdict = await check_consent(source, HeaderFacts(patient_id=PATIENT), ("research",), NOW)
    assert verdict.code == "consent_valid"
    (folder / "b.json").unlink()
    expired = await check_consent(source, HeaderFacts(patient_id=PATIENT), ("research",), NOW)
    assert expired.code == "consent_expired"
    nobody = await check_consent(source, HeaderFacts(patient_id="P-0"), ("research",), NOW)
    assert nobody.code == "consent_missing"
    assert PATIENT not in repr(HeaderFacts(patient_id=PATIENT))


class _Fhir(BaseHTTPRequestHandler):
    """``POST /fhir/Consent/_search``: a searchset of the consents of the asked identifier."""

    consents: ClassVar[list[dict[str, Any]]] = []
    requests: ClassVar[list[tuple[str, dict[str, list[str]], str]]] = []
    status: ClassVar[int] = 200

    def do_POST(self) -> None:  # the http.server API
        body = self.rfile.read(int(self.headers["content-length"])).decode()
        form = parse_qs(body)
        self.requests.append((self.path, form, self.headers.get("authorization", "")))
        asked = form["patient.identifier"][0]
        entries = [
            {"resource": c}
            for c in self.consents
            if asked == f"{SYSTEM}|{c['patient']['identifier']['value']}"
        ]
        data = json.dumps({"resourceType": "Bundle", "type": "searchset", "entry": entries})
        self.send_response(self.status)
        self.send_header("content-type", "application/fhir+json")
        self.end_headers()
        self.wfile.write(data.encode())

    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def fhir_server() -> Iterator[tuple[str, type[_Fhir]]]:
    """A local FHIR server on an ephemeral port (its handler class holds the consents)."""
    handler = type("Fhir", (_Fhir,), {"consents": [], "requests": [], "status": 200})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/fhir", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


async def test_fhir_source_searches_by_post_with_the_identifier_in_the_body(
    tmp_path: Path, fhir_server: tuple[str, type[_Fhir]], caplog: pytest.LogCaptureFixture
) -> None:
    url, handler = fhir_server
    handler.consents = [consent(), consent(patient="someone-else", scope="treatment")]
    token = tmp_path / "fhir.token"
    token.write_text("fhir-secret-token\n")
    config = ConsentSourceConfig(
        kind="fhir", base_url=url, identifier_system=SYSTEM, bearer_token_file=str(token)
    )
    source = FhirConsentSource(config)
    caplog.set_level(logging.DEBUG)
    verdict = await check_consent(source, HeaderFacts(patient_id=PATIENT), ("research",), NOW)
    assert verdict.code == "consent_valid"
    (path, form, auth), *_ = handler.requests
    assert path == "/fhir/Consent/_search" and form["_count"] == ["100"]
    assert form["patient.identifier"] == [f"{SYSTEM}|{PATIENT}"]
    assert auth == "Bearer fhir-secret-token"
    missing = await check_consent(source, HeaderFacts(patient_id="P-0"), ("research",), NOW)
    assert missing.code == "consent_missing"
    handler.status = 500
    down = await check_consent(source, HeaderFacts(patient_id=PATIENT), ("research",), NOW)
    assert down.code == "consent_unavailable" and "500" in down.detail
    assert PATIENT not in caplog.text and PATIENT not in down.detail


async def test_an_unreachable_server_is_unavailable_without_naming_the_patient() -> None:
    config = ConsentSourceConfig(kind="fhir", base_url="http://127.0.0.1:9/fhir", timeout_s=2)
    verdict = await check_consent(
        FhirConsentSource(config), HeaderFacts(patient_id=PATIENT), ("research",), NOW
    )
    assert verdict.code == "consent_unavailable" and PATIENT not in verdict.detail
    none = await check_consent(None, HeaderFacts(patient_id=PATIENT), ("research",), NOW)
    assert none.code == "consent_unavailable"
