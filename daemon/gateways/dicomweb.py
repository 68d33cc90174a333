"""DICOMweb gateway over httpx: QIDO-RS series list, WADO-RS per series, STOW-RS store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Generator, Sequence
from pathlib import Path
from typing import Any

import httpx

from dxai.configs.errors import NotAcceptableError, PermanentError, ServiceUnavailableError
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.base import StoreReport
from dxai.daemon.gateways.multipart import build_multipart, split_multipart

_WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# asked for again when a peer refuses "transfer-syntax=*" (HTTP 406): its default syntax
_WADO_ACCEPT_DEFAULT = 'multipart/related; type="application/dicom"'
_SERIES_UID = "0020000E"
_FAILED_SEQ = "00081198"
_REF_SOP_UID = "00081155"


class StudyNotFoundError(PermanentError):
    """The source archive does not hold the requested study."""

    code = "study_not_found"


class BearerTokenFile(httpx.Auth):
    """``Authorization: Bearer <token>`` with the token read from a file on every request."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add the current token to ``request``."""
        token = self.path.read_text(encoding="utf-8").strip()
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _client(endpoint: DicomWebEndpoint) -> httpx.AsyncClient:
    auth: httpx.Auth | None = None
    if endpoint.bearer_token_file is not None:
        auth = BearerTokenFile(Path(endpoint.bearer_token_file))
    elif endpoint.username is not None:
        password = ""
        if endpoint.password_file is not None:
            password = Path(endpoint.password_file).read_text(encoding="utf-8").strip()
        auth = httpx.BasicAuth(endpoint.username, password)
    return httpx.AsyncClient(
        base_url=endpoint.base_url.rstrip("/"), timeout=endpoint.timeout_s, auth=auth
    )


def _check(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 500 or resp.status_code in (408, 429):
        raise ServiceUnavailableError(f"{what}: HTTP {resp.status_code}")
    if resp.status_code == 406:
        raise NotAcceptableError(f"{what}: HTTP 406")
    if resp.status_code >= 400:
        raise PermanentError(f"{what}: HTTP {resp.status_code}")


class DicomWebGateway:
    """A DICOMweb peer used as study source and/or destination."""

    def __init__(self, endpoint: DicomWebEndpoint) -> None:
        self.endpoint = endpoint
        self._http = _client(endpoint)

    async def _send(self, request: httpx.Request, what: str) -> httpx.Response:
        try:
            resp = await self._http.send(request)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"{what}: {type(exc).__name__}") from exc
        _check(resp, what)
        return resp

    async def list_series(self, study_uid: str) -> list[str]:
        """QIDO-RS ``/studies/{uid}/series``; raise :class:`StudyNotFoundError` when empty."""
        req = self._http.build_request(
            "GET", f"/studies/{study_uid}/series", headers={"Accept": "application/dicom+json"}
        )
        resp = await self._send(req, "qido-rs")
        rows: list[dict[str, Any]] = resp.json() if resp.content else []
        uids = [str(r[_SERIES_UID]["Value"][0]) for r in rows if _SERIES_UID in r]
        if not uids:
            raise StudyNotFoundError(f"study {study_uid} not found at the source")
        return uids

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """WADO-RS one series (original transfer syntax), yielding each instance's bytes.

        A peer that refuses the original syntax (406) is asked again for its default one.
        A single-part ``application/dicom`` answer is taken as one instance.
        """
        path = f"/studies/{study_uid}/series/{series_uid}"
        req = self._http.build_request("GET", path, headers={"Accept": _WADO_ACCEPT})
        try:
            resp = await self._send(req, "wado-rs")
        except NotAcceptableError:
            req = self._http.build_request("GET", path, headers={"Accept": _WADO_ACCEPT_DEFAULT})
            resp = await self._send(req, "wado-rs")
        content_type = resp.headers.get("content-type", "")
        if content_type.lower().startswith("application/dicom"):
            yield resp.content
            return
        for part in split_multipart(resp.content, content_type):
            yield part

    async def store(self, instances: Sequence[bytes]) -> StoreReport:
        """STOW-RS ``instances`` in one request; report refused SOP Instance UIDs."""
        if not instances:
            return StoreReport(stored=0)
        body, content_type = build_multipart(instances)
        req = self._http.build_request(
            "POST",
            "/studies",
            content=body,
            headers={"Content-Type": content_type, "Accept": "application/dicom+json"},
        )
        resp = await self._send(req, "stow-rs")
        failed = _failed_uids(resp)
        return StoreReport(stored=len(instances) - len(failed), failed_uids=failed)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def _failed_uids(resp: httpx.Response) -> tuple[str, ...]:
    if not resp.content:
        return ()
    try:
        data = resp.json()
    except ValueError:
        return ()
    items = data.get(_FAILED_SEQ, {}).get("Value", []) if isinstance(data, dict) else []
    return tuple(str(i.get(_REF_SOP_UID, {}).get("Value", ["?"])[0]) for i in items)
