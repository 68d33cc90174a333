"""Prior studies from a configured DICOMweb archive: QIDO-RS candidate search, WADO-RS retrieve.

The archive is the configured source named by ``priors.archive`` (:func:`priors_endpoint`); its
credentials and TLS settings come from that source only and go only to its ``base_url``
(relative requests, no redirects followed).  Query values are names and identifiers: they are
never logged or put in an exception message (failures name the query's number, the HTTP status
or the transport error's class).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio.to_thread
import httpx
from pydicom.errors import InvalidDicomError as PydicomInvalidDicomError

from dxai.actors.inbound.patient_match import Demographics
from dxai.actors.inbound.priors import (
    CandidateStudy,
    CurrentStudy,
    Prior,
    candidate_from_json,
    query_plan,
    rank_priors,
)
from dxai.actors.inflate import dcmread_bounded
from dxai.configs.atomic import write_bytes_atomic
from dxai.configs.errors import (
    ConfigError,
    InvalidDicomError,
    PermanentError,
    ServiceUnavailableError,
)
from dxai.configs.schema.priors import PriorsConfig
from dxai.configs.schema.services import DicomWebEndpoint, DicomWebSourceSpec, SourceSpec
from dxai.daemon.gateways.answers import read_answer
from dxai.daemon.gateways.dicomweb import DicomWebGateway, _check, _client, _json_rows
from dxai.daemon.gateways.folder import is_uid
from dxai.observability.logging import get_logger

log = get_logger(__name__)

# kept as they are in the query string: some archives do not decode percent-escapes of the
# wildcard or of the comma between includefield attributes
_QUERY_SAFE = "*,-._~"


class PriorsArchiveUnavailableError(ServiceUnavailableError):
    """The priors archive did not answer a query (down, timed out, HTTP 5xx / 408 / 429)."""

    code = "priors_archive_unavailable"


class PriorsQueryRefusedError(PermanentError):
    """The priors archive refused a query (HTTP 4xx) or answered something not DICOM JSON."""

    code = "priors_query_refused"


def priors_endpoint(sources: Mapping[str, SourceSpec], config: PriorsConfig) -> DicomWebEndpoint:
    """The DICOMweb source named ``config.archive`` (``merged_sources`` of the config).

    Raises :class:`ConfigError` when there is none or it is not a DICOMweb source.
    """
    spec = sources.get(config.archive)
    if spec is None:
        raise ConfigError(f"priors.archive: no source named {config.archive!r}")
    if not isinstance(spec, DicomWebSourceSpec):
        raise ConfigError(f"priors.archive: source {config.archive!r} is not a dicomweb source")
    return spec


def studies_query(params: Mapping[str, str]) -> str:
    """The relative QIDO-RS URL ``/studies?...`` with ``*`` and ``,`` left unescaped."""
    pairs = (f"{quote(k, safe='')}={quote(v, safe=_QUERY_SAFE)}" for k, v in params.items())
    return "/studies?" + "&".join(pairs)


async def _query(
    client: httpx.AsyncClient, params: Mapping[str, str], what: str, max_bytes: int
) -> list[dict[str, Any]]:
    """One QIDO-RS study query's DICOM JSON rows (an answer of at most ``max_bytes``);
    failures raise with PHI-free messages."""
    request = client.build_request(
        "GET", studies_query(params), headers={"Accept": "application/dicom+json"}
    )
    try:
        response = await client.send(request, stream=True)
    except httpx.TransportError as exc:
        raise PriorsArchiveUnavailableError(f"{what}: {type(exc).__name__}") from exc
    try:
        _check(response, what)
        return _json_rows(await read_answer(response, max_bytes, what))
    except ServiceUnavailableError as exc:
        raise PriorsArchiveUnavailableError(str(exc)) from exc
    except PermanentError as exc:
        raise PriorsQueryRefusedError(str(exc)) from exc
    finally:
        await response.aclose()


async def find_candidates(
    endpoint: DicomWebEndpoint, target: Demographics, config: PriorsConfig, since: date | None
) -> list[CandidateStudy]:
    """Run :func:`query_plan` against the archive; candidates de-duplicated by Study UID."""
    plan = query_plan(target, config, since=since)
    limit = str(config.max_results_per_query)
    candidates: dict[str, CandidateStudy] = {}
    async with _client(endpoint) as client:
        for index, params in enumerate(plan, start=1):
            what = f"qido-rs priors query {index} of {len(plan)}"
            query = {**params, "limit": limit}
            for row in await _query(client, query, what, endpoint.max_answer_bytes):
                candidate = candidate_from_json(row)
                if candidate is not None:
                    candidates.setdefault(candidate.study_uid, candidate)
    return list(candidates.values())


async def search_priors(
    endpoint: DicomWebEndpoint,
    target: Demographics,
    current: CurrentStudy,
    config: PriorsConfig,
) -> tuple[Prior, ...]:
    """The patient's prior studies in the archive at ``endpoint``, ranked (``rank_priors``).

    Disabled: none.  Raises :class:`PriorsArchiveUnavailableError` (retriable) when the archive
    cannot be reached, :class:`PriorsQueryRefusedError` when it refuses a query.
    """
    if not config.enabled:
        return ()
    since = (current.study_date or date.today()) - timedelta(days=config.lookback_days)
    candidates = await find_candidates(endpoint, target, config, since)
    priors = rank_priors(target, current, candidates, config)
    log.info(
        "prior studies searched",
        extra={"component": "priors", "count": len(priors), "items": len(candidates)},
    )
    return priors


def _checked_uid(uid: str, what: str) -> str:
    if not is_uid(uid):
        raise PriorsQueryRefusedError(f"{what}: not a valid UID")
    return uid


def _write_instance(folder: Path, series_uid: str, data: bytes) -> Path:
    """Write one Part 10 instance to ``folder/<series>/<sop>.dcm`` (atomic); return the path."""
    try:
        header = dcmread_bounded(data, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
    except (PydicomInvalidDicomError, EOFError, ValueError) as exc:
        raise InvalidDicomError(f"wado-rs: series {series_uid}: undecodable instance") from exc
    sop_uid = _checked_uid(str(header.get("SOPInstanceUID", "")), "wado-rs instance")
    path = folder / series_uid / f"{sop_uid}.dcm"
    write_bytes_atomic(path, data)
    return path


async def retrieve_prior(
    endpoint: DicomWebEndpoint, prior: Prior, folder: Path
) -> tuple[Path, ...]:
    """WADO-RS every series of ``prior`` into ``folder/<series uid>/<sop uid>.dcm``.

    Complete or raising (``DicomWebGateway``'s count check: ``RetrieveIncompleteError``); a
    study the archive no longer holds raises ``StudyNotFoundError``.  Returns the files written.
    """
    study_uid = _checked_uid(prior.study_uid, "prior study")
    gateway = DicomWebGateway(endpoint)
    paths: list[Path] = []
    try:
        for series_uid in await gateway.list_series(study_uid):
            _checked_uid(series_uid, "prior series")
            async for data in gateway.iter_instances(study_uid, series_uid):
                path = await anyio.to_thread.run_sync(_write_instance, folder, series_uid, data)
                paths.append(path)
    finally:
        await gateway.aclose()
    return tuple(paths)
