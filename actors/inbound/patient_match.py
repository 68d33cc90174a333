"""Is this archive record the same patient?  A fuzzy, explained match of demographics.

Pure: no I/O.  The score (0..1) is the weighted mean of four parts (weights from
:class:`~dxai.configs.schema.priors.PriorsConfig`): name similarity (rapidfuzz token-set /
token-sort ratio over normalised names), birth date (exact, day/month swapped), patient ID with
its issuer, and sex.  A part missing on either side scores ``unknown_part_score``.  The
explanation names each part's outcome with numbers and fixed words only, never a value.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from pydicom.dataset import Dataset
from rapidfuzz import fuzz

from dxai.configs.schema.priors import PriorsConfig

# letters that NFKD does not decompose into an ASCII base letter and a combining mark
_SPECIAL = str.maketrans({"ø": "o", "æ": "ae", "œ": "oe", "ł": "l", "đ": "d", "þ": "th", "ı": "i"})
# German-style transliterations of umlauts, folded the same way on both sides (Mueller = Müller)
_TRANSLIT = (("ae", "a"), ("oe", "o"), ("ue", "u"))
_NAME_COMPONENTS = 3  # family ^ given ^ middle; prefix and suffix (Dr, Jr) are not the person
_KNOWN_SEX = frozenset({"M", "F"})

_Part = tuple[float, str]  # (part score 0..1, PHI-free reason)


@dataclass(frozen=True)
class Demographics:
    """Who a study belongs to; every field is PHI and left out of ``repr``.

    ``name``: DICOM PN (``FAMILY^GIVEN^MIDDLE^PREFIX^SUFFIX``, groups after ``=`` ignored) or
    free order (``John Doe``); ``birth_date``: ``YYYYMMDD``; ``sex``: ``M``/``F``/``O``/"";
    ``patient_id`` with ``issuer`` (IssuerOfPatientID, "" when unknown).
    """

    name: str = field(default="", repr=False)
    birth_date: str = field(default="", repr=False)
    sex: str = field(default="", repr=False)
    patient_id: str = field(default="", repr=False)
    issuer: str = field(default="", repr=False)


@dataclass(frozen=True)
class PatientMatch:
    """How well a candidate matches: ``score`` 0..1 and PHI-free reasons per part."""

    score: float
    explanation: tuple[str, ...]


def demographics_of(ds: Dataset) -> Demographics:
    """The demographics in a dataset's patient module (missing attributes are "")."""

    def text(keyword: str) -> str:
        value = ds.get(keyword)
        return "" if value is None else str(value).strip()

    return Demographics(
        name=text("PatientName"),
        birth_date=text("PatientBirthDate"),
        sex=text("PatientSex"),
        patient_id=text("PatientID"),
        issuer=text("IssuerOfPatientID"),
    )


def json_value(row: Mapping[str, Any], tag: str) -> str:
    """The first value of ``tag`` (8 hex digits) in a DICOM JSON object, as text ("" if none).

    A person name gives its ``Alphabetic`` group.
    """
    element = row.get(tag)
    values = element.get("Value") if isinstance(element, Mapping) else None
    if not isinstance(values, list) or not values:
        return ""
    first = values[0]
    if isinstance(first, Mapping):
        first = first.get("Alphabetic", "")
    return "" if first is None else str(first).strip()


def demographics_from_json(row: Mapping[str, Any]) -> Demographics:
    """The demographics of a QIDO-RS (DICOM JSON) study result."""
    return Demographics(
        name=json_value(row, "00100010"),
        birth_date=json_value(row, "00100030"),
        sex=json_value(row, "00100040"),
        patient_id=json_value(row, "00100020"),
        issuer=json_value(row, "00100021"),
    )


def fold_text(text: str) -> str:
    """Lower case, ß -> ss, diacritics removed (NFKD, combining marks dropped)."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_SPECIAL))
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.translate(_SPECIAL)


def transliterate(token: str) -> str:
    """``mueller`` -> ``muller``: the ASCII umlaut spellings folded onto the plain vowel."""
    for pair, vowel in _TRANSLIT:
        token = token.replace(pair, vowel)
    return token


def name_components(name: str) -> tuple[tuple[str, ...], ...]:
    """The folded word tokens of each PN component (first group; family, given, middle)."""
    first_group = name.split("=", 1)[0]
    components = first_group.split("^")[:_NAME_COMPONENTS]
    out = []
    for component in components:
        words = tuple(re.sub(r"[^a-z0-9]+", " ", fold_text(component)).split())
        if words:
            out.append(words)
    return tuple(out)


def name_tokens(name: str) -> tuple[str, ...]:
    """All folded word tokens of a name, in order."""
    return tuple(word for component in name_components(name) for word in component)


def name_similarity(a: str, b: str) -> tuple[float, str] | None:
    """(similarity 0..1, method) of two names in any order / case / accents; None if one is
    empty.  Token-set ratio when at least two tokens are shared (a middle name on one side
    only), else token-sort ratio; the better of the plain and the transliterated spelling."""
    tokens_a, tokens_b = name_tokens(a), name_tokens(b)
    if not tokens_a or not tokens_b:
        return None
    best = (0.0, "token sort")
    for left, right in ((tokens_a, tokens_b), _translit(tokens_a, tokens_b)):
        joined_a, joined_b = " ".join(left), " ".join(right)
        if len(set(left) & set(right)) >= 2:
            candidate = (fuzz.token_set_ratio(joined_a, joined_b) / 100.0, "token set")
        else:
            candidate = (fuzz.token_sort_ratio(joined_a, joined_b) / 100.0, "token sort")
        best = max(best, candidate, key=lambda pair: pair[0])
    return best


def _translit(a: tuple[str, ...], b: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(transliterate(t) for t in a), tuple(transliterate(t) for t in b)


def parse_date(text: str) -> date | None:
    """A DICOM DA (``YYYYMMDD``) as a date; None when absent or invalid."""
    text = text.strip()
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def swapped_date(text: str) -> str | None:
    """``YYYYDDMM`` for ``YYYYMMDD`` when both are valid dates and differ; else None."""
    if parse_date(text) is None:
        return None
    swapped = text[:4] + text[6:8] + text[4:6]
    if swapped == text or parse_date(swapped) is None:
        return None
    return swapped


def _name_part(target: Demographics, candidate: Demographics, unknown: float) -> _Part:
    similarity = name_similarity(target.name, candidate.name)
    if similarity is None:
        return unknown, "name unknown"
    value, method = similarity
    return value, f"name {value:.2f} ({method})"


def _birth_part(target: Demographics, candidate: Demographics, config: PriorsConfig) -> _Part:
    mine, theirs = target.birth_date.strip(), candidate.birth_date.strip()
    if parse_date(mine) is None or parse_date(theirs) is None:
        return config.unknown_part_score, "birth date unknown"
    if mine == theirs:
        return 1.0, "birth date exact"
    if swapped_date(mine) == theirs:
        return config.swapped_birth_date_score, "birth date day-month swapped"
    return 0.0, "birth date differs"


def _id_part(target: Demographics, candidate: Demographics, unknown: float) -> _Part:
    mine, theirs = target.patient_id.strip().upper(), candidate.patient_id.strip().upper()
    if not mine or not theirs:
        return unknown, "patient id unknown"
    issuer_a, issuer_b = target.issuer.strip().upper(), candidate.issuer.strip().upper()
    if issuer_a and issuer_b and issuer_a != issuer_b:
        # two namespaces: equal or not, the identifiers say nothing about each other
        same = "equal" if mine == theirs else "differs"
        return unknown, f"patient id {same}, issuers differ (no evidence)"
    if mine != theirs:
        return 0.0, "patient id differs"
    if issuer_a and issuer_b:
        return 1.0, "patient id + issuer equal"
    if issuer_a or issuer_b:
        return 1.0, "patient id equal (issuer on one side only)"
    return 1.0, "patient id equal (no issuer)"


def _sex_part(target: Demographics, candidate: Demographics, unknown: float) -> _Part:
    mine, theirs = target.sex.strip().upper(), candidate.sex.strip().upper()
    if mine not in _KNOWN_SEX or theirs not in _KNOWN_SEX:
        return unknown, "sex unknown"
    return (1.0, "sex equal") if mine == theirs else (0.0, "sex differs")


def match_patient(
    target: Demographics, candidate: Demographics, config: PriorsConfig
) -> PatientMatch:
    """Score (0..1) how likely ``candidate`` is the same patient as ``target``, with reasons."""
    unknown = config.unknown_part_score
    parts = (
        (config.name_weight, _name_part(target, candidate, unknown)),
        (config.birth_date_weight, _birth_part(target, candidate, config)),
        (config.patient_id_weight, _id_part(target, candidate, unknown)),
        (config.sex_weight, _sex_part(target, candidate, unknown)),
    )
    total = sum(weight for weight, _ in parts)
    score = sum(weight * value for weight, (value, _) in parts) / total
    return PatientMatch(
        score=round(min(max(score, 0.0), 1.0), 4),
        explanation=tuple(reason for _, (_, reason) in parts),
    )
