"""TLS of the gateways: contexts from the ``tls_*`` keys, a real handshake on loopback for each."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pynetdicom import AE
from pynetdicom.sop_class import Verification

from dxai.configs.errors import ConfigError, ServiceUnavailableError
from dxai.configs.schema.services import DicomWebEndpoint, DimseEndpoint
from dxai.daemon.gateways import DicomWebGateway
from dxai.daemon.gateways.dimse import _associate
from dxai.daemon.gateways.tls import client_context, dimse_tls_args, http_verify

QIDO = b'[{"0020000E": {"vr": "UI", "Value": ["1.2.3.4"]}}]'


@dataclass(frozen=True)
class Pki:
    """A throw-away CA, a server certificate for 127.0.0.1 and a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _issue(
    folder: Path, stem: str, subject: str, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey]
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer[0])
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
    )
    cert = builder.sign(issuer[1], hashes.SHA256())
    cert_path, key_path = folder / f"{stem}.pem", folder / f"{stem}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("dxai test CA"))
        .issuer_name(_name("dxai test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path = tmp_path / "ca.pem"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = _issue(tmp_path, "server", "127.0.0.1", (_name("dxai test CA"), ca_key))
    client = _issue(tmp_path, "client", "dxai-client", (_name("dxai test CA"), ca_key))
    return Pki(ca_path, *server, *client)


def _server_context(pki: Pki, require_client: bool) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki.ca))
    ctx.load_cert_chain(pki.server_cert, pki.server_key)
    ctx.verify_mode = ssl.CERT_REQUIRED if require_client else ssl.CERT_NONE
    return ctx


async def _answer_qido(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        await reader.readuntil(b"\r\n\r\n")
        head = b"HTTP/1.1 200 OK\r\nContent-Type: application/dicom+json\r\nConnection: close\r\n"
        writer.write(head + f"Content-Length: {len(QIDO)}\r\n\r\n".encode() + QIDO)
        await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def https_port(pki: Pki, request: pytest.FixtureRequest) -> AsyncIterator[int]:
    require_client = bool(getattr(request, "param", False))
    server = await asyncio.start_server(
        _answer_qido, "127.0.0.1", 0, ssl=_server_context(pki, require_client)
    )
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        server.close()


async def _series(endpoint: DicomWebEndpoint) -> list[str]:
    gateway = DicomWebGateway(endpoint)
    try:
        return await gateway.list_series("1.2.3")
    finally:
        await gateway.aclose()


async def test_https_trusts_the_configured_ca_only(pki: Pki, https_port: int) -> None:
    url = f"https://127.0.0.1:{https_port}/dicom-web"
    assert await _series(DicomWebEndpoint(base_url=url, tls_ca_file=str(pki.ca))) == ["1.2.3.4"]
    with pytest.raises(ServiceUnavailableError):  # the system store does not know the test CA
        await _series(DicomWebEndpoint(base_url=url))
    assert await _series(DicomWebEndpoint(base_url=url, tls_verify=False)) == ["1.2.3.4"]


@pytest.mark.parametrize("https_port", [True], indirect=True)
async def test_https_client_certificate(pki: Pki, https_port: int) -> None:
    url = f"https://127.0.0.1:{https_port}/dicom-web"
    mtls = DicomWebEndpoint(
        base_url=url,
        tls_ca_file=str(pki.ca),
        tls_cert_file=str(pki.client_cert),
        tls_key_file=str(pki.client_key),
    )
    assert await _series(mtls) == ["1.2.3.4"]
    with pytest.raises(ServiceUnavailableError):
        await _series(DicomWebEndpoint(base_url=url, tls_ca_file=str(pki.ca)))


def test_context_settings(pki: Pki, tmp_path: Path) -> None:
    strict = client_context(DicomWebEndpoint(base_url="https://h/", tls_ca_file=str(pki.ca)))
    assert strict.verify_mode == ssl.CERT_REQUIRED and strict.check_hostname
    assert strict.minimum_version >= ssl.TLSVersion.TLSv1_2
    loose = client_context(DicomWebEndpoint(base_url="https://h/", tls_verify=False))
    assert loose.verify_mode == ssl.CERT_NONE and not loose.check_hostname
    missing = DicomWebEndpoint(base_url="https://h/", tls_ca_file=str(tmp_path / "none.pem"))
    with pytest.raises(ConfigError, match="tls_ca_file"):
        client_context(missing)
    peer = DimseEndpoint(ae_title="A", host="pacs", port=11112)
    assert dimse_tls_args(peer) is None
    args = dimse_tls_args(peer.model_copy(update={"tls": True}))
    assert args is not None and args[1] == "pacs"
    with pytest.raises(ValueError, match="tls: true"):
        DimseEndpoint(ae_title="A", host="pacs", port=1, tls_ca_file=str(pki.ca))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_dimse_association_over_tls(pki: Pki) -> None:
    port = _free_port()
    scp = AE(ae_title="TLSPACS")
    scp.add_supported_context(Verification)
    server = scp.start_server(
        ("127.0.0.1", port), block=False, ssl_context=_server_context(pki, False)
    )
    try:
        scu = AE(ae_title="DXAI")
        scu.add_requested_context(Verification)
        scu.acse_timeout = scu.network_timeout = 10
        peer = DimseEndpoint(
            ae_title="TLSPACS", host="127.0.0.1", port=port, tls=True, tls_ca_file=str(pki.ca)
        )
        assoc = _associate(scu, peer)
        status = assoc.send_c_echo()
        assoc.release()
        assert status.Status == 0x0000
        with pytest.raises(ServiceUnavailableError):  # the system store does not know the CA
            _associate(scu, peer.model_copy(update={"tls_ca_file": None}))
    finally:
        server.shutdown()


def test_context_built_once_per_settings_and_file_state(pki: Pki, tmp_path: Path) -> None:
    """Every job's client shares one context; a replaced CA file builds a new one; a broken
    file fails each time (failures are not cached); plain http shares the system-store one."""
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pki.ca.read_bytes())
    endpoint = DicomWebEndpoint(base_url="https://h/", tls_ca_file=str(ca))
    first = client_context(endpoint)
    assert client_context(endpoint.model_copy()) is first
    assert http_verify("https://h/", endpoint) is first
    ca.write_bytes(pki.ca.read_bytes() + b"\n")  # renewed in place: new size
    renewed = client_context(endpoint)
    assert renewed is not first and client_context(endpoint) is renewed
    ca.write_text("not a certificate")
    for _ in range(2):
        with pytest.raises(ConfigError, match="tls_ca_file"):
            client_context(endpoint)
    plain = DicomWebEndpoint(base_url="http://h/")
    shared = http_verify("http://h/", plain)
    assert shared is http_verify("http://other/", plain) and shared.verify_mode == ssl.CERT_REQUIRED
