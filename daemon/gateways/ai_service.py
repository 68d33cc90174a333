"""External HTTP JSON AI services: POST the study's UIDs, validate the findings they answer.

The request carries the study UID and the taken series (UID, modality, SOP Instance UIDs):
no patient data.  The answer is untrusted: it is size-capped, validated by a strict pydantic
model (codes ``ai.…``, numbers finite), and its free text is stripped of control characters
and truncated.  ``deadline_s`` bounds every attempt and back-off; 5xx, 408/429, connection
errors and timeouts are retried with back-off, other 4xx and redirects are not (the bearer token
goes to the configured URL only).  The report's ``detail`` is an error code, never vendor text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from dxai.actors.inbound.ai_select import eligible_instances, select_series
from dxai.actors.inbound.findings import Concept, Finding, TaskReport, TaskStatus, report_of
from dxai.actors.inbound.study import StudyView
from dxai.configs.errors import PermanentError, ServiceUnavailableError
from dxai.configs.schema.ai_tasks import FINDING_CODE, AiServiceConfig
from dxai.daemon.gateways.tls import http_verify
from dxai.observability.logging import get_logger

log = get_logger(__name__)
MESSAGE_MAX_CHARS = 200
_UID = r"^[0-9]+(\.[0-9]+)*$"


@dataclass(frozen=True)
class AiSeriesRef:
    """One series sent to the service: its UID, modality and instances' SOP Instance UIDs."""

    series_uid: str
    modality: str
    sop_uids: tuple[str, ...]


@dataclass(frozen=True)
class AiServiceRequest:
    """What a service is sent: UIDs and modalities only (no patient data)."""

    study_uid: str
    series: tuple[AiSeriesRef, ...]

    def as_json(self) -> dict[str, Any]:
        """The JSON body."""
        return {
            "study_uid": self.study_uid,
            "series": [
                {"series_uid": s.series_uid, "modality": s.modality, "sop_uids": list(s.sop_uids)}
                for s in self.series
            ],
        }


def ai_service_request(study: StudyView, service: AiServiceConfig) -> AiServiceRequest:
    """The request for ``service``: the study's series its selector takes (maybe none)."""
    refs = tuple(
        AiSeriesRef(
            view.series_uid,
            view.modality,
            tuple(ref.sop_uid for ref in eligible_instances(view, service.series)),
        )
        for view in select_series(study, service.series)
    )
    return AiServiceRequest(study.study_uid, refs)


class _Vendor(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class VendorConcept(_Vendor):
    """A concept as the service codes it."""

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=1024)


class VendorFinding(_Vendor):
    """One finding of the service's answer."""

    code: str = Field(pattern=FINDING_CODE)
    score: float | None = Field(default=None, allow_inf_nan=False)
    severity: Literal["info", "warning", "blocking"]
    message: str = Field(default="", max_length=100_000)
    series_uid: str | None = Field(default=None, max_length=64, pattern=_UID)
    concept: VendorConcept | None = None


class VendorResponse(_Vendor):
    """The service's answer: ``{"findings": [...]}``."""

    findings: list[VendorFinding] = Field(max_length=10_000)


class AiServiceError(PermanentError):
    """The service refused the request or answered something unusable (not retried)."""

    code = "ai_service_error"

    def __init__(self, reason: str) -> None:
        super().__init__(f"ai service: {reason}")
        self.reason = reason


class AiServiceUnavailableError(ServiceUnavailableError):
    """The service did not answer usefully this time (retried within the deadline)."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"ai service: {reason}")
        self.reason = reason


def clean_text(text: str, limit: int = MESSAGE_MAX_CHARS) -> str:
    """``text`` without control / format characters, whitespace collapsed, at most ``limit``."""
    spaced = (" " if ch.isspace() else ch for ch in text)
    kept = "".join(ch for ch in spaced if unicodedata.category(ch)[0] != "C")
    collapsed = " ".join(kept.split())
    return collapsed if len(collapsed) <= limit else collapsed[: limit - 1] + "…"


def _check_status(resp: httpx.Response) -> None:
    status = resp.status_code
    if status >= 500 or status in (408, 429):
        raise AiServiceUnavailableError(f"http_{status}")
    if status >= 300:
        raise AiServiceError(f"http_{status}")


async def _read_body(resp: httpx.Response, limit: int) -> bytes:
    body = bytearray()
    async for chunk in resp.aiter_bytes():
        body.extend(chunk)
        if len(body) > limit:
            raise AiServiceError("response_too_large")
    return bytes(body)


def _parse(body: bytes) -> VendorResponse:
    try:
        return VendorResponse.model_validate_json(body)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])[:80] or "body"
        raise AiServiceError(f"invalid_response {where} {first['type']}") from exc


async def _token(service: AiServiceConfig) -> str | None:
    if service.bearer_token_file is None:
        return None
    try:
        text = await asyncio.to_thread(Path(service.bearer_token_file).read_text, "utf-8")
    except OSError as exc:
        raise AiServiceError("token_unreadable") from exc
    return text.strip()


def _http_client(service: AiServiceConfig) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        verify=http_verify(service.url, service), follow_redirects=False, trust_env=False
    )


async def _attempt(
    http: httpx.AsyncClient, service: AiServiceConfig, body: dict[str, Any], timeout_s: float
) -> VendorResponse:
    """One POST; raises AiServiceUnavailableError (retry) or AiServiceError (stop)."""
    headers = {"Accept": "application/json"}
    token = await _token(service)
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = http.build_request(
        "POST", service.url, json=body, headers=headers, timeout=httpx.Timeout(timeout_s)
    )
    try:
        resp = await http.send(request, stream=True)
        try:
            _check_status(resp)
            raw = await _read_body(resp, service.max_response_bytes)
        finally:
            await resp.aclose()
    except httpx.TimeoutException as exc:
        raise AiServiceUnavailableError("timeout") from exc
    except httpx.TransportError as exc:
        raise AiServiceUnavailableError("connection_error") from exc
    return _parse(raw)


async def _call(
    service: AiServiceConfig, body: dict[str, Any], deadline: float, tries: list[str]
) -> VendorResponse:
    """Attempts with back-off until one answers, a permanent error, or the attempts run out;
    ``tries`` collects each failed attempt's reason."""
    loop = asyncio.get_running_loop()
    async with _http_client(service) as http:
        for attempt in range(1, service.max_attempts + 1):
            try:
                return await _attempt(http, service, body, max(deadline - loop.time(), 1e-3))
            except AiServiceUnavailableError as exc:
                tries.append(exc.reason)
                log.warning("ai service attempt failed", extra={"error_code": exc.reason})
                if attempt == service.max_attempts:
                    raise
            delay = min(service.retry_initial_s * 2 ** (attempt - 1), service.retry_max_s)
            await asyncio.sleep(min(delay, max(deadline - loop.time(), 0.0)))
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _concept(concept: VendorConcept) -> Concept:
    value, scheme = clean_text(concept.value, 64), clean_text(concept.scheme, 16)
    return Concept(value, scheme, clean_text(concept.meaning, 64))


def _message(service: AiServiceConfig, item: VendorFinding) -> str:
    """The vendor's text, cleaned, only where the site allows it; else codes and numbers."""
    if service.keep_vendor_messages and (text := clean_text(item.message)):
        return text
    return item.code if item.score is None else f"{item.code}: score {item.score:.3f}"


def _finding(service: AiServiceConfig, item: VendorFinding, series_uids: set[str]) -> Finding:
    if item.series_uid is not None and item.series_uid not in series_uids:
        raise AiServiceError("invalid_response series_uid not requested")
    severity = item.severity
    if severity == "blocking" and not service.blocking:
        severity = "warning"
    concept = item.concept
    return Finding(
        code=item.code,
        severity=severity,
        message=_message(service, item),
        task=service.name,
        series_uid=item.series_uid,
        score=item.score,
        concept=_concept(concept) if concept else None,
    )


def _report(
    service: AiServiceConfig, request: AiServiceRequest, answer: VendorResponse, attempts: int
) -> TaskReport:
    if len(answer.findings) > service.max_findings:
        raise AiServiceError("invalid_response too_many_findings")
    uids = {s.series_uid for s in request.series}
    findings = [_finding(service, item, uids) for item in answer.findings]
    downgraded = sum(
        1 for f, i in zip(findings, answer.findings, strict=True) if f.severity != i.severity
    )
    report = report_of(service.name, findings, "", attempts=attempts, downgraded=downgraded)
    return dataclasses.replace(report, blocking=service.blocking)


def _plain(service: AiServiceConfig, status: TaskStatus, detail: str, attempts: int) -> TaskReport:
    counts = {"attempts": attempts}
    return TaskReport(service.name, status, detail=detail, counts=counts, blocking=service.blocking)


async def call_ai_service(service: AiServiceConfig, request: AiServiceRequest) -> TaskReport:
    """Send ``request`` to ``service`` and turn its answer into the task's report.

    ``skipped`` when the request has no series; ``timed_out`` when ``deadline_s`` passes;
    ``failed`` (detail: the error code, e.g. ``http_400``, ``invalid_response …``) when the
    service refuses, answers something unusable, or keeps failing; else ``passed`` / ``held``.
    """
    if not request.series:
        return _plain(service, "skipped", "no series selected", 0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + service.deadline_s
    tries: list[str] = []
    try:
        async with asyncio.timeout_at(deadline):
            answer = await _call(service, request.as_json(), deadline, tries)
            return _report(service, request, answer, len(tries) + 1)
    except TimeoutError:
        return _plain(service, "timed_out", "deadline_exceeded", len(tries) + 1)
    except AiServiceUnavailableError as exc:
        if loop.time() >= deadline:
            return _plain(service, "timed_out", "deadline_exceeded", len(tries))
        return _plain(service, "failed", exc.reason, len(tries))
    except AiServiceError as exc:
        log.warning("ai service refused", extra={"error_code": exc.reason.split()[0]})
        return _plain(service, "failed", exc.reason, len(tries) + 1)
