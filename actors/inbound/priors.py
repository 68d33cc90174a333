"""Prior studies of the patient: how to ask the archive, which answers are the patient, in what
order they matter.

Pure: the gateway (``daemon/gateways/priors.py``) runs :func:`query_plan`'s QIDO-RS queries,
parses each answer with :func:`candidate_from_json` and hands the candidates to
:func:`rank_priors`.  A :class:`Prior` carries the study's description (free text, possibly
PHI): keep it out of logs; :func:`priors_report` uses counts and study UIDs only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from dxai.actors.inbound.findings import Finding, TaskReport, report_of
from dxai.actors.inbound.patient_match import (
    Demographics,
    PatientMatch,
    demographics_from_json,
    fold_text,
    json_value,
    match_patient,
    parse_date,
    swapped_date,
    transliterate,
)
from dxai.actors.inbound.study import StudyView
from dxai.configs.schema.priors import PriorsConfig, normalise_keyword

TASK = "priors"
#: QIDO-RS attributes a candidate needs (patient match, date, modality, region)
INCLUDE_FIELDS = (
    "PatientName",
    "PatientID",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyDescription",
    "ModalitiesInStudy",
    "BodyPartExamined",
)
_STUDY_UID = "0020000D"
_STUDY_DATE = "00080020"
_DESCRIPTION = "00081030"
_MODALITIES = "00080061"
_BODY_PART = "00180015"
# modalities that say nothing about what was imaged (reports, key objects, states)
_NON_IMAGE = frozenset({"SR", "KO", "PR", "DOC"})
_GERMAN = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue"})
_UNSAFE_RUN = re.compile(r"[^A-Za-z0-9._~-]+")


@dataclass(frozen=True)
class CurrentStudy:
    """The study being processed: what priors are compared with."""

    study_uid: str
    study_date: date | None = None
    modalities: tuple[str, ...] = ()
    body_part: str = ""
    description: str = field(default="", repr=False)


@dataclass(frozen=True)
class CandidateStudy:
    """A study the archive answered with (one QIDO-RS result)."""

    study_uid: str
    patient: Demographics
    study_date: date | None = None
    modalities: tuple[str, ...] = ()
    body_part: str = ""
    description: str = field(default="", repr=False)


@dataclass(frozen=True)
class Prior:
    """A ranked prior study: who it matched and why it is relevant (reasons are PHI-free)."""

    study_uid: str
    study_date: date | None
    modalities: tuple[str, ...]
    description: str = field(repr=False)
    match_score: float
    match_explanation: tuple[str, ...]
    relevance: float
    relevance_explanation: tuple[str, ...]


def current_study_of(view: StudyView) -> CurrentStudy:
    """The :class:`CurrentStudy` of a received study (its first header's study attributes)."""
    header = view.first_header()
    return CurrentStudy(
        study_uid=view.study_uid,
        study_date=parse_date(str(header.get("StudyDate", ""))),
        modalities=view.modalities,
        body_part=str(header.get("BodyPartExamined", "")).strip(),
        description=str(header.get("StudyDescription", "")).strip(),
    )


def _json_values(row: Mapping[str, Any], tag: str) -> tuple[str, ...]:
    element = row.get(tag)
    values = element.get("Value") if isinstance(element, Mapping) else None
    if not isinstance(values, list):
        return ()
    return tuple(str(v).strip() for v in values if isinstance(v, str | int | float) and str(v))


def candidate_from_json(row: Mapping[str, Any]) -> CandidateStudy | None:
    """A QIDO-RS study result (DICOM JSON) as a candidate; None without a Study Instance UID."""
    study_uid = json_value(row, _STUDY_UID)
    if not study_uid:
        return None
    modalities = tuple(dict.fromkeys(m.upper() for m in _json_values(row, _MODALITIES)))
    return CandidateStudy(
        study_uid=study_uid,
        patient=demographics_from_json(row),
        study_date=parse_date(json_value(row, _STUDY_DATE)),
        modalities=modalities,
        body_part=json_value(row, _BODY_PART),
        description=json_value(row, _DESCRIPTION),
    )


def _family_words(name: str) -> list[str]:
    """The words of the family name (the first PN component; all words without a ``^``)."""
    first_group = name.split("=", 1)[0]
    family = first_group.split("^", 1)[0]
    return [w for w in re.split(r"[\W_]+", family) if w]


def qido_safe(value: str) -> str:
    """``value`` for a QIDO-RS match: each run of characters other than ASCII letters, digits
    and ``-._~`` becomes ``*`` (some archives neither decode percent-escapes nor fold accents:
    ``MÜLLER`` is asked for as ``M*LLER``)."""
    return _UNSAFE_RUN.sub("*", value)


def _spellings(word: str) -> list[str]:
    """Upper-case search spellings of a name word: accents folded, umlauts as ``ue`` and as
    ``u``, other letters as ``*`` (``Müller``: MULLER, MUELLER, M*LLER; ``Mueller``: MUELLER,
    MULLER).  Spellings with fewer than two letters or digits are left out."""
    folded = fold_text(word)
    forms = [folded, fold_text(word.casefold().translate(_GERMAN)), transliterate(folded)]
    forms.append(word.casefold())
    out = []
    for form in dict.fromkeys(qido_safe(f).upper() for f in forms):
        if sum(c.isascii() and c.isalnum() for c in form) >= 2:
            out.append(form)
    return out


def query_plan(
    target: Demographics, config: PriorsConfig, *, since: date | None = None
) -> list[dict[str, str]]:
    """QIDO-RS ``/studies`` query parameters that find the patient's studies however the
    archive spelled the name: by PatientID; by PatientBirthDate (and its day/month-swapped
    form); by each family-name word (in each spelling) with a trailing ``*``.  ``since``
    limits the studies to that date and later.  The gateway adds ``limit``.
    """
    base = {"includefield": ",".join(INCLUDE_FIELDS)}
    if since is not None:
        base["StudyDate"] = f"{since:%Y%m%d}-"
    keys: list[tuple[str, str]] = []
    patient_id = qido_safe(target.patient_id.strip())
    if patient_id.strip("*"):
        keys.append(("PatientID", patient_id))
    birth = target.birth_date.strip()
    if parse_date(birth) is not None:
        keys.append(("PatientBirthDate", birth))
        if (swapped := swapped_date(birth)) is not None:
            keys.append(("PatientBirthDate", swapped))
    for word in _family_words(target.name):
        keys.extend(
            ("PatientName", f"{spelling}*".replace("**", "*")) for spelling in _spellings(word)
        )
    return [{**base, key: value} for key, value in dict.fromkeys(keys)]


def body_regions_of(texts: Iterable[str], config: PriorsConfig) -> frozenset[str]:
    """The body regions named in ``texts`` (BodyPartExamined, StudyDescription) by keyword."""
    regions: set[str] = set()
    for text in texts:
        padded = f" {normalise_keyword(text)} "
        regions.update(r for kw, r in config.body_regions.items() if f" {kw} " in padded)
    return frozenset(regions)


def _modality_part(current: CurrentStudy, candidate: CandidateStudy) -> tuple[float, str]:
    mine = {m for m in current.modalities if m not in _NON_IMAGE}
    theirs = {m for m in candidate.modalities if m not in _NON_IMAGE}
    if not mine or not theirs:
        return 0.0, "modality unknown"
    return (1.0, "same modality") if mine & theirs else (0.0, "other modality")


def _region_part(
    current: CurrentStudy, candidate: CandidateStudy, config: PriorsConfig
) -> tuple[float, str]:
    mine = body_regions_of((current.body_part, current.description), config)
    theirs = body_regions_of((candidate.body_part, candidate.description), config)
    if not mine or not theirs:
        return 0.0, "body region unknown"
    common = mine & theirs
    if common:
        return 1.0, f"same body region ({', '.join(sorted(common))})"
    return 0.0, "other body region"


def _recency_part(
    candidate: CandidateStudy, reference: date, config: PriorsConfig
) -> tuple[float, str]:
    if candidate.study_date is None:
        return 0.0, "study date unknown"
    age_days = (reference - candidate.study_date).days
    return max(0.0, 1.0 - age_days / config.lookback_days), f"{age_days} days before"


def relevance_of(
    current: CurrentStudy, candidate: CandidateStudy, reference: date, config: PriorsConfig
) -> tuple[float, tuple[str, ...]]:
    """(relevance 0..1, reasons): same modality, same body region, recency, weighted."""
    parts = (
        (config.modality_weight, _modality_part(current, candidate)),
        (config.region_weight, _region_part(current, candidate, config)),
        (config.recency_weight, _recency_part(candidate, reference, config)),
    )
    total = sum(weight for weight, _ in parts)
    score = sum(w * value for w, (value, _) in parts) / total if total > 0 else 0.0
    return round(score, 4), tuple(reason for _, (_, reason) in parts)


def _in_window(candidate: CandidateStudy, reference: date, config: PriorsConfig) -> bool:
    """Dated no later than the reference and within ``lookback_days`` (undated: kept)."""
    if candidate.study_date is None:
        return True
    earliest = reference - timedelta(days=config.lookback_days)
    return earliest <= candidate.study_date <= reference


def _prior(
    candidate: CandidateStudy, match: PatientMatch, relevance: tuple[float, tuple[str, ...]]
) -> Prior:
    return Prior(
        study_uid=candidate.study_uid,
        study_date=candidate.study_date,
        modalities=candidate.modalities,
        description=candidate.description,
        match_score=match.score,
        match_explanation=match.explanation,
        relevance=relevance[0],
        relevance_explanation=relevance[1],
    )


def _rank_key(prior: Prior) -> tuple[float, float, int, str]:
    ordinal = prior.study_date.toordinal() if prior.study_date is not None else 0
    return -round(prior.match_score, 2), -prior.relevance, -ordinal, prior.study_uid


def rank_priors(
    target: Demographics,
    current: CurrentStudy,
    candidates: Sequence[CandidateStudy],
    config: PriorsConfig,
) -> tuple[Prior, ...]:
    """The patient's prior studies among ``candidates``, best first, at most ``max_priors``.

    The current study and repeated UIDs are left out, so are studies after the current one's
    date (today when it has none) or older than ``lookback_days``, and candidates scoring below
    ``min_match_score``.  Order: patient score (to 2 decimals), relevance, newer first.
    """
    reference = current.study_date or date.today()
    seen = {current.study_uid}
    priors = []
    for candidate in candidates:
        if candidate.study_uid in seen or not _in_window(candidate, reference, config):
            continue
        seen.add(candidate.study_uid)
        match = match_patient(target, candidate.patient, config)
        if match.score < config.min_match_score:
            continue
        relevance = relevance_of(current, candidate, reference, config)
        priors.append(_prior(candidate, match, relevance))
    priors.sort(key=_rank_key)
    return tuple(priors[: config.max_priors])


def priors_report(priors: Sequence[Prior]) -> TaskReport:
    """Task ``priors``: ``priors.found`` (count in ``value``, study UIDs in the message) or
    ``priors.none``; both informational."""
    if not priors:
        none = Finding("priors.none", "info", "no prior study of the patient found", TASK)
        return report_of(TASK, [none], detail="0 priors", priors=0)
    count = len(priors)
    noun = "study" if count == 1 else "studies"
    uids = ", ".join(p.study_uid for p in priors)
    found = Finding(
        "priors.found",
        "info",
        f"{count} prior {noun} found: {uids}",
        TASK,
        value=float(count),
        unit="{studies}",
        score=max(p.match_score for p in priors),
    )
    return report_of(TASK, [found], detail=f"{count} priors", priors=count)
