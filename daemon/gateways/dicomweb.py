"""DICOMweb gateway over httpx: QIDO-RS series and counts, WADO-RS streamed, STOW-RS in pieces."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Sequence
from contextlib import aclosing
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx

from dxai.configs.errors import (
    DxaiError,
    NotAcceptableError,
    PermanentError,
    RetrieveIncompleteError,
    ServiceUnavailableError,
)
from dxai.configs.schema.services import DicomWebEndpoint
from dxai.daemon.gateways.answers import read_answer
from dxai.daemon.gateways.base import InstanceData, StoreReport, check_complete
from dxai.daemon.gateways.multipart import (
    MultipartBody,
    MultipartParser,
    MultipartPartTooLargeError,
    MultipartTruncatedError,
    part_sizes,
    stow_pieces,
)
from dxai.daemon.gateways.stow_report import element, failed_uids
from dxai.daemon.gateways.tls import http_verify

_WADO_ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# asked for again when a peer refuses "transfer-syntax=*" (HTTP 406): its default syntax
_WADO_ACCEPT_DEFAULT = 'multipart/related; type="application/dicom"'
_SERIES_UID = "0020000E"
_COUNT = "00201209"  # NumberOfSeriesRelatedInstances


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
    verify = http_verify(endpoint.base_url, endpoint)
    return httpx.AsyncClient(
        base_url=endpoint.base_url.rstrip("/"), timeout=endpoint.timeout_s, auth=auth, verify=verify
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

    counts_instances = True  # completeness by count: see gateways.base.counts_instances

    def __init__(self, endpoint: DicomWebEndpoint) -> None:
        self.endpoint = endpoint
        self._http = _client(endpoint)
        # (study, series) -> NumberOfSeriesRelatedInstances as QIDO-RS said at list time
        self._expected: dict[tuple[str, str], int | None] = {}

    async def _send(self, request: httpx.Request, what: str) -> httpx.Response:
        """The streamed response to ``request`` once its status says it answered (the caller
        reads and closes it)."""
        try:
            resp = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise ServiceUnavailableError(f"{what}: {type(exc).__name__}") from exc
        try:
            _check(resp, what)
        except DxaiError:
            await resp.aclose()
            raise
        return resp

    async def _answer(self, request: httpx.Request, what: str) -> tuple[int, bytes]:
        """The status and whole body of a small answer (QIDO-RS, STOW-RS), the body at most
        ``max_answer_bytes``."""
        resp = await self._send(request, what)
        try:
            return resp.status_code, await read_answer(resp, self.endpoint.max_answer_bytes, what)
        finally:
            await resp.aclose()

    async def _series_counts(self, study_uid: str, series_uid: str = "") -> dict[str, int | None]:
        """QIDO-RS series of a study (or one series): Series UID -> number of instances."""
        params = {"includefield": _COUNT}
        if series_uid:
            params["SeriesInstanceUID"] = series_uid
        req = self._http.build_request(
            "GET",
            f"/studies/{_segment(study_uid)}/series",
            params=params,
            headers={"Accept": "application/dicom+json"},
        )
        _status, body = await self._answer(req, "qido-rs")
        rows = _json_rows(body)
        return {uid: _count(row) for row in rows if (uid := _first(row, _SERIES_UID))}

    async def list_series(self, study_uid: str) -> list[str]:
        """QIDO-RS ``/studies/{uid}/series``; raise :class:`StudyNotFoundError` when empty.

        Each series' ``NumberOfSeriesRelatedInstances`` is remembered for the completeness
        check of :meth:`iter_instances`.
        """
        counts = await self._series_counts(study_uid)
        if not counts:
            raise StudyNotFoundError(f"study {study_uid} not found at the source")
        for uid, count in counts.items():
            self._expected[(study_uid, uid)] = count
        return list(counts)

    async def iter_instances(self, study_uid: str, series_uid: str) -> AsyncIterator[bytes]:
        """WADO-RS one series (original transfer syntax), yielding each instance as it arrives.

        The response is streamed and split incrementally (one instance in memory).  A peer that
        refuses the original syntax (406) is asked again for its default one; a single-part
        ``application/dicom`` answer is one instance.  Fewer instances than QIDO-RS reported
        (at :meth:`list_series`, else asked now), or a body cut before its closing delimiter,
        raise :class:`RetrieveIncompleteError`.
        """
        key = (study_uid, series_uid)
        if key not in self._expected:
            counts = await self._series_counts(study_uid, series_uid)
            self._expected[key] = counts.get(series_uid)
        received = 0
        parts = self._wado_series(study_uid, series_uid)
        async with aclosing(parts):  # a consumer that stops early closes the response now
            async for part in parts:
                received += 1
                yield part
                del part  # not kept while the next one arrives
        check_complete(received, self._expected[key], "wado-rs", series_uid)

    async def _open_wado(self, path: str) -> httpx.Response:
        """The streamed WADO-RS response for ``path`` (original syntax, else the default)."""
        req = self._http.build_request("GET", path, headers={"Accept": _WADO_ACCEPT})
        try:
            return await self._send(req, "wado-rs")
        except NotAcceptableError:
            req = self._http.build_request("GET", path, headers={"Accept": _WADO_ACCEPT_DEFAULT})
            return await self._send(req, "wado-rs")

    async def _wado_series(self, study_uid: str, series_uid: str) -> AsyncGenerator[bytes, None]:
        path = f"/studies/{_segment(study_uid)}/series/{_segment(series_uid)}"
        resp = await self._open_wado(path)
        try:
            content_type = resp.headers.get("content-type", "")
            limit = self.endpoint.max_instance_bytes
            if content_type.lower().startswith("application/dicom"):
                yield await _whole_body(resp, limit)
                return
            parser = MultipartParser(content_type, limit)
            async for chunk in _body_chunks(resp):
                parts = parser.feed(chunk)
                while parts:
                    yield parts.pop(0)  # not kept while the next one arrives
            try:
                parser.close()
            except MultipartTruncatedError as exc:
                raise RetrieveIncompleteError(f"wado-rs: series {series_uid}: {exc}") from exc
        finally:
            await resp.aclose()

    async def store(self, instances: Sequence[InstanceData]) -> StoreReport:
        """STOW-RS ``instances`` in requests of at most ``stow_max_instances`` instances and
        ``stow_max_bytes`` bytes (one larger instance goes alone), each body streamed (files
        are read only while sent); report refused SOP Instance UIDs.

        A request that fails raises: the pieces sent before it stay stored (STOW-RS of the same
        instances again overwrites them).
        """
        if not instances:
            return StoreReport(stored=0)
        sizes = await anyio.to_thread.run_sync(part_sizes, instances)
        limits = (self.endpoint.stow_max_instances, self.endpoint.stow_max_bytes)
        stored = 0
        failed: list[str] = []
        for piece in stow_pieces(sizes, *limits):
            report = await self._stow([instances[i] for i in piece], [sizes[i] for i in piece])
            stored += report.stored
            failed.extend(report.failed_uids)
        return StoreReport(stored=stored, failed_uids=tuple(failed))

    async def _stow(self, parts: Sequence[InstanceData], sizes: Sequence[int]) -> StoreReport:
        """One STOW-RS request of ``parts``, its body streamed with a Content-Length."""
        body = MultipartBody(parts, sizes)
        headers = {
            "Content-Type": body.content_type,
            "Content-Length": str(body.length),
            "Accept": "application/dicom+json",
        }
        req = self._http.build_request("POST", "/studies", content=body, headers=headers)
        status, answer = await self._answer(req, "stow-rs")
        failed = failed_uids(answer, status)
        return StoreReport(stored=max(0, len(parts) - len(failed)), failed_uids=failed)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()


def _segment(uid: str) -> str:
    """A UID as one URL path segment: percent-encoded, so that a value from an event or from
    a peer's answer can never name another resource of the archive (``../``, ``?``)."""
    return quote(uid, safe="")


def _json_rows(body: bytes) -> list[dict[str, Any]]:
    """The DICOM JSON objects of a QIDO-RS answer (none for an empty body)."""
    if not body:
        return []
    try:
        rows = json.loads(body)
    except ValueError as exc:
        raise PermanentError("qido-rs: the answer is not DICOM JSON") from exc
    if not isinstance(rows, list):
        raise PermanentError("qido-rs: the answer is not a JSON array")
    return [row for row in rows if isinstance(row, dict)]


def _first(row: dict[str, Any], tag: str) -> str:
    """The first value of ``tag`` in a DICOM JSON object, as text ('' when absent, or not a
    string or number: a peer's malformed answer)."""
    values = element(row, tag)
    first = values[0] if values else None
    return str(first) if isinstance(first, str | int | float) else ""


def _count(row: dict[str, Any]) -> int | None:
    """NumberOfSeriesRelatedInstances of a series row; None when the archive did not say."""
    try:
        return int(_first(row, _COUNT))
    except ValueError:
        return None


async def _whole_body(resp: httpx.Response, limit: int) -> bytes:
    """A single-instance answer's bytes; :class:`MultipartPartTooLargeError` past ``limit``."""
    chunks, size = [], 0
    async for chunk in _body_chunks(resp):
        size += len(chunk)
        if size > limit:
            raise MultipartPartTooLargeError(f"an instance is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _body_chunks(resp: httpx.Response) -> AsyncIterator[bytes]:
    """A streamed response body chunk by chunk; a broken transfer is retriable."""
    try:
        async for chunk in resp.aiter_bytes():
            yield chunk
    except httpx.TransportError as exc:
        raise ServiceUnavailableError(f"wado-rs: {type(exc).__name__}") from exc
