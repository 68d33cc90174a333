"""Peers' small answers are read bounded and defensively: QIDO-RS, STOW-RS reports, priors
queries, FHIR consent searches and the health probe never hold an endless or oversized answer,
a malformed report never counts as stored, and a UID never leaves its URL path segment."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.schema.policy import ConsentSourceConfig
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways import priors
from dxai.daemon.gateways.answers import AnswerTooLargeError, read_answer
from dxai.daemon.gateways.dicomweb import DicomWebGateway
from dxai.daemon.health import probe_http
from dxai.daemon.policy.consent import ConsentUnavailableError, FhirConsentSource
from dxai.daemon.policy.facts import HeaderFacts

BASE = "http://peer.example/dicom-web"
STUDY, SERIES = "1.2.3", "1.2.3.4"
LIMIT = 64 * 1024
CHUNK = 16 * 1024


class Endless:
    """An answer body generated lazily without end; counts what was pulled from it."""

    def __init__(self, piece: bytes = b"[" + b" " * (CHUNK - 1)) -> None:
        self.piece, self.sent = piece, 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(1 << 20):  # 16 GiB, were it read to the end
            self.sent += len(self.piece)
            yield self.piece


def _gateway(handle: Callable[[httpx.Request], httpx.Response]) -> DicomWebGateway:
    gateway = DicomWebGateway(DicomWebEndpoint(base_url=BASE, max_answer_bytes=LIMIT))
    gateway._http = httpx.AsyncClient(base_url=BASE, transport=httpx.MockTransport(handle))
    return gateway


async def test_an_endless_qido_answer_is_refused_at_the_bound() -> None:
    body = Endless()
    gateway = _gateway(lambda _request: httpx.Response(200, content=body))
    with pytest.raises(AnswerTooLargeError) as caught:
        await gateway.list_series(STUDY)
    assert caught.value.code == "answer_too_large"
    assert isinstance(caught.value, PermanentError)  # the same question, the same answer
    assert body.sent <= LIMIT + CHUNK
    await gateway.aclose()


async def test_a_declared_oversized_answer_is_refused_before_its_body() -> None:
    body = Endless()
    headers = {"content-length": str(LIMIT + 1)}
    gateway = _gateway(lambda _request: httpx.Response(200, content=body, headers=headers))
    with pytest.raises(AnswerTooLargeError, match="declares"):
        await gateway.list_series(STUDY)
    assert body.sent == 0
    await gateway.aclose()


async def test_a_broken_answer_transfer_is_retriable() -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield b"[{"
        raise httpx.ReadError("connection reset")

    resp = httpx.Response(200, content=broken())
    with pytest.raises(ServiceUnavailableError) as caught:
        await read_answer(resp, LIMIT, "qido-rs")
    assert caught.value.retriable


@pytest.mark.parametrize(
    "rows",
    [
        [{"0020000E": "not an element"}],
        [{"0020000E": {"Value": "1.2.3.4"}}],
        [{"0020000E": {"Value": [{"nested": 1}]}}],
        [{"0020000E": {"Value": [None]}}],
        [["not", "an", "object"], 7, None],
    ],
    ids=["element-not-object", "value-not-list", "value-object", "value-null", "rows-not-objects"],
)
async def test_malformed_qido_rows_are_no_series_and_no_crash(rows: list[object]) -> None:
    gateway = _gateway(lambda _request: httpx.Response(200, json=rows))
    with pytest.raises(PermanentError):  # no usable series: the study is not found
        await gateway.list_series(STUDY)
    await gateway.aclose()


async def test_a_uid_from_an_answer_stays_in_its_path_segment() -> None:
    hostile = "../../../patients?expand"
    paths: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.raw_path.decode())
        if request.url.path.endswith("/series"):
            return httpx.Response(200, json=[{"0020000E": {"Value": [hostile]}}])
        return httpx.Response(404)

    gateway = _gateway(handle)
    assert await gateway.list_series(STUDY) == [hostile]
    with pytest.raises(PermanentError):
        async for _part in gateway.iter_instances(STUDY, hostile):
            pass
    assert paths[-1] == f"/dicom-web/studies/{STUDY}/series/..%2F..%2F..%2Fpatients%3Fexpand"
    await gateway.aclose()


def _stow(status: int, body: bytes) -> DicomWebGateway:
    return _gateway(lambda _request: httpx.Response(status, content=body))


async def _store_two(gateway: DicomWebGateway) -> tuple[int, tuple[str, ...]]:
    report = await gateway.store([b"DICM-one", b"DICM-two"])
    await gateway.aclose()
    return report.stored, report.failed_uids


async def test_stow_200_counts_every_instance_stored_whatever_the_body() -> None:
    assert await _store_two(_stow(200, b"<html>ok</html>")) == (2, ())
    assert await _store_two(_stow(200, b"")) == (2, ())


async def test_stow_202_reports_are_read_defensively() -> None:
    failed = {"00081198": {"vr": "SQ", "Value": [{"00081155": {"Value": ["1.9"]}}, 5, {}]}}
    stored, uids = await _store_two(_stow(202, json.dumps(failed).encode()))
    assert uids == ("1.9", "?", "?") and stored == 0  # more failures named than sent: none
    warned = {"00081199": {"vr": "SQ", "Value": [{"00081155": {"Value": ["1.8"]}}]}}
    assert await _store_two(_stow(202, json.dumps(warned).encode())) == (2, ())


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"{}", b""], ids=str)
async def test_stow_202_without_a_readable_report_fails_the_request(body: bytes) -> None:
    """HTTP 202 says some instances were not stored: which ones must be known."""
    with pytest.raises(PermanentError, match="202"):
        await _store_two(_stow(202, body))


async def test_an_endless_priors_answer_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    body = Endless()
    endpoint = DicomWebEndpoint(base_url=BASE, max_answer_bytes=LIMIT)
    transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
    client = httpx.AsyncClient(base_url=BASE, transport=transport)
    with pytest.raises(priors.PriorsQueryRefusedError):
        await priors._query(client, {"PatientID": "X"}, "qido-rs priors query", LIMIT)
    assert body.sent <= endpoint.max_answer_bytes + CHUNK
    await client.aclose()


async def test_an_endless_consent_answer_is_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    body = Endless(b'{"resourceType": "Bundle", "entry": [' + b" " * CHUNK)
    real = httpx.AsyncClient

    def client(**options: object) -> httpx.AsyncClient:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
        return real(transport=transport, timeout=5)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    fhir = "http://fhir.example"
    config = ConsentSourceConfig(kind="fhir", base_url=fhir, max_answer_bytes=LIMIT)
    with pytest.raises(ConsentUnavailableError):
        await FhirConsentSource(config).find(HeaderFacts(patient_id="P1"))
    assert body.sent <= LIMIT + 2 * CHUNK


async def test_the_health_probe_reads_the_status_only(monkeypatch: pytest.MonkeyPatch) -> None:
    body = Endless()
    real = httpx.AsyncClient

    def client(**options: object) -> httpx.AsyncClient:
        transport = httpx.MockTransport(lambda _request: httpx.Response(200, content=body))
        return real(transport=transport, timeout=5)

    monkeypatch.setattr(httpx, "AsyncClient", client)
    result = await probe_http(DicomWebEndpoint(base_url=BASE), 5.0)
    assert result.ok and body.sent <= CHUNK


def test_endpoint_answer_bound_is_configurable() -> None:
    assert DicomWebEndpoint(base_url=BASE).max_answer_bytes == 64 * 1024**2
    with pytest.raises(ValueError, match="max_answer_bytes"):
        DicomWebEndpoint(base_url=BASE, max_answer_bytes=10)


_NATIVE = "http://dicom.nema.org/PS3.19/models/NativeDICOM"


def _xml_report(failed: list[str], ns: str = "") -> bytes:
    """A Native DICOM Model STOW-RS report listing ``failed`` (one item without a UID too)."""
    items = "".join(
        f'<Item number="{n}"><DicomAttribute tag="00081155" vr="UI">'
        f'<Value number="1">{uid}</Value></DicomAttribute></Item>'
        for n, uid in enumerate(failed, start=1)
    )
    items += f'<Item number="{len(failed) + 1}"/>'
    xmlns = f' xmlns="{ns}"' if ns else ""
    return (
        f'<?xml version="1.0"?><NativeDicomModel{xmlns}>'
        f'<DicomAttribute tag="00081198" vr="SQ">{items}</DicomAttribute></NativeDicomModel>'
    ).encode()


@pytest.mark.parametrize("ns", ["", _NATIVE], ids=["plain", "namespaced"])
async def test_stow_202_xml_reports_are_read(ns: str) -> None:
    """Some archives answer in the Native DICOM Model XML whatever they are asked."""
    assert await _store_two(_stow(202, _xml_report(["1.9"], ns))) == (0, ("1.9", "?"))
    # a failure listed under HTTP 200 still counts (the list is believed, not the status)
    assert await _store_two(_stow(200, _xml_report([], ns))) == (1, ("?",))


async def test_an_entity_expansion_report_is_unreadable_not_expanded() -> None:
    laughs = '<!ENTITY a "ha">' + "".join(
        f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(9)
    )
    bomb = f'<?xml version="1.0"?><!DOCTYPE r [{laughs}]><r>&j;</r>'.encode()
    with pytest.raises(PermanentError, match="cannot be read"):
        await _store_two(_stow(202, bomb))
