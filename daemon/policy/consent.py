"""Consent and authorisation before release: FHIR R4 ``Consent`` resources, read from a folder
or a FHIR server, judged against a rule's scope and the current time.

A consent is valid when it is ``active``, its ``scope`` or ``category`` carries one of the
rule's codes, its (top-level) provision permits (no provision counts as permit) and the
provision's period covers now.  No such consent: ``consent_missing``, or ``consent_expired``
when one would be valid but its period ended; a source that cannot answer:
``consent_unavailable``.  Parsing uses ``fhir.resources`` (R4B models: the Consent resource is
the same as R4's).

The patient identifier never reaches a log, a URL or a message: the FHIR search is a
``POST <base_url>/Consent/_search`` with a form body, and errors name status codes and
exception classes only.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
from fhir.resources.R4B.consent import Consent
from pydantic import ValidationError

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.policy import ConsentSourceConfig
from dxai.daemon.gateways.answers import AnswerTooLargeError, read_answer
from dxai.daemon.gateways.tls import http_verify
from dxai.daemon.policy.facts import HeaderFacts
from dxai.observability.logging import get_logger

log = get_logger(__name__)
ConsentState = Literal["valid", "missing", "expired", "unavailable"]
_FHIR_JSON = "application/fhir+json"


class ConsentUnavailableError(ServiceUnavailableError):
    """The consent source could not answer (the message names no patient)."""

    code = "consent_unavailable"


@dataclass(frozen=True)
class ConsentVerdict:
    """Whether release is authorised, and why (counts and codes only)."""

    state: ConsentState
    detail: str

    @property
    def code(self) -> str:
        """``consent_`` + the state (``valid``, ``missing``, ``expired``, ``unavailable``)."""
        return f"consent_{self.state}"


class ConsentSource(Protocol):
    """Finds the consents of one patient."""

    async def find(self, patient: HeaderFacts) -> list[Consent]:
        """Every Consent resource of ``patient`` (may include ones out of scope)."""
        ...


def evaluate(consents: Sequence[Consent], scope: Sequence[str], now: datetime) -> ConsentVerdict:
    """Judge ``consents`` for ``scope`` at ``now`` (see the module doc)."""
    in_scope = [c for c in consents if _codes(c) & set(scope)]
    permits = [c for c in in_scope if c.status == "active" and _permits(c)]
    if any(_covers(c, now) for c in permits):
        return ConsentVerdict("valid", f"an active consent in scope ({', '.join(scope)})")
    if any(_ended(c, now) for c in permits):
        return ConsentVerdict("expired", "the consent in scope has expired")
    detail = f"{len(consents)} consent(s) found, {len(in_scope)} in scope, none valid now"
    return ConsentVerdict("missing", detail)


def _codes(consent: Consent) -> set[str]:
    concepts = [consent.scope, *(consent.category or [])]
    return {str(c.code) for cc in concepts if cc is not None for c in cc.coding or [] if c.code}


def _permits(consent: Consent) -> bool:
    provision = consent.provision
    return provision is None or provision.type != "deny"


def _period(consent: Consent) -> tuple[datetime | None, datetime | None]:
    provision = consent.provision
    period = provision.period if provision is not None else None
    if period is None:
        return None, None
    return _instant(period.start, end=False), _instant(period.end, end=True)


def _covers(consent: Consent, now: datetime) -> bool:
    start, end = _period(consent)
    return (start is None or start <= now) and (end is None or now < end)


def _ended(consent: Consent, now: datetime) -> bool:
    _start, end = _period(consent)
    return end is not None and end <= now


def _instant(value: Any, *, end: bool) -> datetime | None:
    """A period bound as an aware instant; a date (or a year, a month) ends at its last day's
    end.  A naive time is taken as UTC."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        day = datetime(value.year, value.month, value.day, tzinfo=UTC)
        return day + timedelta(days=1) if end else day
    parts = [int(p) for p in str(value).split("-") if p.isdigit()]
    if not parts:
        return None
    year, month = parts[0], parts[1] if len(parts) > 1 else None
    first = datetime(year, month or 1, 1, tzinfo=UTC)
    if not end:
        return first
    if month is None:
        return datetime(year + 1, 1, 1, tzinfo=UTC)
    return datetime(year + month // 12, month % 12 + 1, 1, tzinfo=UTC)


def consents_in(document: Any) -> Iterator[Consent]:
    """The Consent resources of a parsed JSON document: a Consent, or a Bundle's entries.
    Entries that are not valid Consents are skipped (counted by the caller)."""
    if not isinstance(document, dict):
        return
    if document.get("resourceType") == "Bundle":
        for entry in document.get("entry") or []:
            if isinstance(entry, dict):
                yield from consents_in(entry.get("resource"))
        return
    if document.get("resourceType") != "Consent":
        return
    try:
        yield Consent.model_validate(document)
    except ValidationError:
        log.warning("consent resource invalid", extra={"error_code": "consent_invalid"})


def _of_patient(consent: Consent, patient: HeaderFacts, system: str | None) -> bool:
    ref = consent.patient
    ident = ref.identifier if ref is not None else None
    if ident is None or ident.value is None or str(ident.value) != patient.patient_id:
        return False
    return system is None or ident.system is None or str(ident.system) == system


class FolderConsentSource:
    """Consents in a folder of ``*.json`` files (each a Consent or a Bundle of them), matched
    on ``Consent.patient.identifier`` (and its system when ``identifier_system`` is set).
    Every lookup reads the folder again (files may be added at any time)."""

    def __init__(self, folder: Path, system: str | None = None) -> None:
        self.folder, self.system = folder, system

    async def find(self, patient: HeaderFacts) -> list[Consent]:
        """The consents of ``patient`` in the folder."""
        if not patient.patient_id:
            return []
        return await asyncio.to_thread(self._scan, patient)

    def _scan(self, patient: HeaderFacts) -> list[Consent]:
        if not self.folder.is_dir():
            raise ConsentUnavailableError("the consent folder does not exist")
        found: list[Consent] = []
        unreadable = 0
        for path in sorted(self.folder.glob("*.json")):
            try:
                document = json.loads(path.read_bytes())
            except (OSError, ValueError):
                unreadable += 1
                continue
            found.extend(c for c in consents_in(document) if _of_patient(c, patient, self.system))
        if unreadable:
            log.warning("consent files unreadable", extra={"count": unreadable})
        return found


class FhirConsentSource:
    """Consents from a FHIR R4 server: ``POST <base_url>/Consent/_search`` with
    ``patient.identifier=[system|]value`` (the first page, up to 100)."""

    def __init__(self, config: ConsentSourceConfig) -> None:
        assert config.base_url is not None
        self.config = config
        self.url = config.base_url.rstrip("/") + "/Consent/_search"
        self._tls = http_verify(config.base_url, config)

    async def find(self, patient: HeaderFacts) -> list[Consent]:
        """The consents the server returns for ``patient``."""
        if not patient.patient_id:
            return []
        system = self.config.identifier_system
        value = f"{system}|{patient.patient_id}" if system else patient.patient_id
        form = {"patient.identifier": value, "_count": "100"}
        headers = {"accept": _FHIR_JSON, **await asyncio.to_thread(self._auth)}
        try:
            async with httpx.AsyncClient(verify=self._tls, timeout=self.config.timeout_s) as http:
                body = await self._post(http, form, headers)
        except httpx.HTTPError as exc:
            raise ConsentUnavailableError(f"consent server: {type(exc).__name__}") from None
        try:
            document = json.loads(body)
        except ValueError:
            raise ConsentUnavailableError("consent server: the answer is not JSON") from None
        return list(consents_in(document))

    async def _post(
        self, http: httpx.AsyncClient, form: dict[str, str], headers: dict[str, str]
    ) -> bytes:
        """The search's answer body (at most ``max_answer_bytes``); ConsentUnavailableError
        for any other status than 200, a broken transfer or a larger answer."""
        request = http.build_request("POST", self.url, data=form, headers=headers)
        answer = await http.send(request, stream=True)
        try:
            if answer.status_code != 200:
                raise ConsentUnavailableError(f"consent server answered {answer.status_code}")
            return await read_answer(answer, self.config.max_answer_bytes, "consent server")
        except (AnswerTooLargeError, ServiceUnavailableError) as exc:
            raise ConsentUnavailableError(str(exc)) from None
        finally:
            await answer.aclose()

    def _auth(self) -> dict[str, str]:
        path = self.config.bearer_token_file
        if path is None:
            return {}
        try:
            token = Path(path).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConsentUnavailableError("consent bearer_token_file cannot be read") from exc
        return {"authorization": f"Bearer {token}"}


def make_consent_source(config: ConsentSourceConfig | None) -> ConsentSource | None:
    """The configured consent source (None when none is configured)."""
    if config is None:
        return None
    if config.kind == "folder":
        assert config.folder is not None
        return FolderConsentSource(Path(config.folder), config.identifier_system)
    return FhirConsentSource(config)


async def check_consent(
    source: ConsentSource | None,
    patient: HeaderFacts,
    scope: Iterable[str],
    now: datetime | None = None,
) -> ConsentVerdict:
    """The verdict for ``patient`` (``unavailable`` without a source or when it fails)."""
    if source is None:
        return ConsentVerdict("unavailable", "no consent source is configured")
    if not patient.patient_id:
        return ConsentVerdict("missing", "the study has no patient identifier")
    try:
        consents = await source.find(patient)
    except ConsentUnavailableError as exc:
        log.warning("consent source unavailable", extra={"error_code": exc.code})
        return ConsentVerdict("unavailable", str(exc))
    return evaluate(consents, tuple(scope), now or datetime.now(UTC))
