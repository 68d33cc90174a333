"""WADO-RS against peers that answer differently from Orthanc (mocked HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.dicomweb import DicomWebGateway
from dxai.daemon.gateways.multipart import build_multipart

PATH = "/studies/1.2.3/series/1.2.3.4"


def _qido_or(wado: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    """QIDO-RS answers one series without a count; everything else goes to ``wado``."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/series"):
            return httpx.Response(200, json=[{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}}])
        return wado(request)

    return httpx.MockTransport(handle)


def _gateway(handler: httpx.MockTransport, **endpoint: str) -> DicomWebGateway:
    """A gateway configured from ``endpoint`` whose HTTP goes to ``handler``."""
    base = "http://peer.example/dicom-web"
    gateway = DicomWebGateway(DicomWebEndpoint(base_url=base, **endpoint))
    auth = gateway._http.auth
    gateway._http = httpx.AsyncClient(base_url=base, transport=handler, auth=auth)
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

    assert await _instances(_gateway(_qido_or(handle))) == [b"one", b"two"]
    assert len(accepts) == 2 and "transfer-syntax" not in accepts[1]


async def test_single_part_application_dicom_is_one_instance() -> None:
    def handle(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=b"DICM", headers={"content-type": "application/dicom"})

    assert await _instances(_gateway(_qido_or(handle))) == [b"DICM"]


@pytest.mark.parametrize(
    ("status", "error"), [(404, PermanentError), (503, ServiceUnavailableError)]
)
async def test_other_failures_keep_their_class(status: int, error: type[Exception]) -> None:
    gateway = _gateway(httpx.MockTransport(lambda request: httpx.Response(status)))
    with pytest.raises(error):
        await _instances(gateway)


async def test_bearer_token_is_read_again_for_every_request(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("first\n")
    seen: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        return httpx.Response(200, content=b"DICM", headers={"content-type": "application/dicom"})

    gateway = _gateway(_qido_or(handle), bearer_token_file=str(token))
    await _instances(gateway)
    token.write_text("rotated\n")
    await _instances(gateway)
    assert seen == ["Bearer first", "Bearer rotated"]


def test_endpoint_refuses_two_kinds_of_credentials() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="either username"):
        DicomWebEndpoint(base_url="http://x", username="u", bearer_token_file="/t")
