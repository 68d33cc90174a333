"""WADO-RS against peers that answer differently from Orthanc (mocked HTTP)."""

from __future__ import annotations

import httpx
import pytest

from dxai.daemon.config.services import DicomWebEndpoint
from dxai.daemon.errors import PermanentError, ServiceUnavailableError
from dxai.daemon.gateways.dicomweb import DicomWebGateway
from dxai.daemon.gateways.multipart import build_multipart

PATH = "/studies/1.2.3/series/1.2.3.4"


def _gateway(handler: httpx.MockTransport) -> DicomWebGateway:
    gateway = DicomWebGateway(DicomWebEndpoint(base_url="http://peer.example/dicom-web"))
    gateway._http = httpx.AsyncClient(base_url="http://peer.example/dicom-web", transport=handler)
    return gateway


async def _instances(gateway: DicomWebGateway) -> list[bytes]:
    return [part async for part in gateway.iter_instances("1.2.3", "1.2.3.4")]


async def test_peer_refusing_original_syntax_is_asked_for_its_default() -> None:
    accepts: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        accepts.append(request.headers["accept"])
        if "transfer-syntax=*" in request.headers["accept"]:
            return httpx.Response(406)
        body, content_type = build_multipart([b"one", b"two"])
        return httpx.Response(200, content=body, headers={"content-type": content_type})

    assert await _instances(_gateway(httpx.MockTransport(handle))) == [b"one", b"two"]
    assert len(accepts) == 2 and "transfer-syntax" not in accepts[1]


async def test_single_part_application_dicom_is_one_instance() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"DICM", headers={"content-type": "application/dicom"})

    assert await _instances(_gateway(httpx.MockTransport(handle))) == [b"DICM"]


@pytest.mark.parametrize(
    ("status", "error"), [(404, PermanentError), (503, ServiceUnavailableError)]
)
async def test_other_failures_keep_their_class(status: int, error: type[Exception]) -> None:
    gateway = _gateway(httpx.MockTransport(lambda request: httpx.Response(status)))
    with pytest.raises(error):
        await _instances(gateway)
