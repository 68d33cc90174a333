"""Deciding which recognised text is PHI: header values, patterns and allow lists."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from pydicom.dataset import Dataset
from rapidfuzz import fuzz

from dxai.configs.phi import MONTH_PATTERN, date_spellings, fold_accents, normalise
from dxai.configs.schema.pixels import DEFAULT_ALLOW

PHI_KEYWORDS = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "PatientBirthDate",
    "AccessionNumber",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "ReferringPhysicianName",
    "PerformingPhysicianName",
    "OperatorsName",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "IssuerOfPatientID",
    "MedicalRecordLocator",
    "PatientMotherBirthName",
    "OtherPatientNames",
)
_STOP_WORDS = frozenset(
    [
        "THE",
        "OF",
        "AND",
        "DR",
        "MD",
        "MR",
        "MRS",
        "MS",
        "HOSPITAL",
        "MEDICAL",
        "CENTER",
        "CENTRE",
        "GENERAL",
        "CLINIC",
        "UNIVERSITY",
        "HEALTH",
        "INSTITUTE",
        "DEPARTMENT",
        "RADIOLOGY",
        "ST",
        "SAINT",
        "IMAGING",
    ]
)
_DATE_PATTERNS = (
    re.compile(r"(?<![\d.])(\d{1,4})[./-](\d{1,2})[./-](\d{2,4})(?![\d.])"),
    re.compile(r"\b\d{1,2}[ -]?" + MONTH_PATTERN + r"[ -,]*\d{2,4}\b", re.IGNORECASE),
    re.compile(r"\b" + MONTH_PATTERN + r"[ -]?\d{1,2},?[ -]?\d{4}\b", re.IGNORECASE),
    re.compile(r"\b\d{4}[ -]?" + MONTH_PATTERN + r"[ -]?\d{1,2}\b", re.IGNORECASE),
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
)
_ID_PATTERN = re.compile(r"(?<![\w.])[A-Z]{0,3}\d[\d-]{4,}\d[A-Z]?(?![\w.])", re.IGNORECASE)
_PHONE_PATTERN = re.compile(r"(?<!\d)\(?\d{3}\)?[ .-]?\d{3}[ .-]\d{4}(?!\d)")
# a fragment of an identifier or date this long, read on its own, is still that identifier
MIN_PARTIAL = 5


@dataclass(frozen=True)
class PhiTerms:
    """Normalised PHI values to look for: words (names), identifiers and date spellings."""

    words: frozenset[str]
    ids: frozenset[str]
    dates: frozenset[str]
    phrases: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """True when there is nothing to match."""
        return not (self.words or self.ids or self.dates)


def phi_values(ds: Dataset) -> list[str]:
    """The PHI strings of a dataset's header (read before header de-identification)."""
    out: list[str] = []
    for keyword in PHI_KEYWORDS:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        items = value if isinstance(value, list | tuple) or _is_multi(value) else [value]
        out.extend(str(v) for v in items if str(v).strip())
    return out


def _is_multi(value: object) -> bool:
    return type(value).__name__ == "MultiValue"


def build_terms(values: Iterable[str]) -> PhiTerms:
    """Normalise header PHI values into matchable terms."""
    words: set[str] = set()
    ids: set[str] = set()
    dates: set[str] = set()
    phrases: set[str] = set()
    for raw in values:
        value = fold_accents(raw)
        dates |= date_spellings(value) if re.fullmatch(r"\s*\d{8}\s*", value) else set()
        for token in re.split(r"[^0-9A-Za-z]+", value):
            norm = normalise(token)
            if len(norm) < 2:
                continue
            if any(ch.isdigit() for ch in norm):
                if len(norm) >= 3:
                    ids.add(norm)
            elif norm not in _STOP_WORDS:
                words.add(norm)
        joined = normalise(value)
        if any(ch.isdigit() for ch in joined) and len(joined) >= 4:
            ids.add(joined)
        elif len(joined) >= 8 and len(value.split()) > 1:
            phrases.add(joined)
        if "^" in value:
            parts = [normalise(p) for p in value.split("^")[:2]]
            if len("".join(parts)) >= 5:
                phrases.update({"".join(parts), "".join(reversed(parts))})
    return PhiTerms(frozenset(words), frozenset(ids), frozenset(dates), frozenset(phrases))


def _token_spans(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"\S+", text)]


def _word_spans(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group()) for m in re.finditer(r"[0-9A-Za-z]+", text)]


def _word_hit(token: str, terms: PhiTerms) -> str | None:
    norm = normalise(token)
    if any(ch.isalpha() for ch in norm):
        norm = letterise(norm)
    if len(norm) < 2:
        return None
    if norm in terms.words:
        return "name"
    if len(norm) >= 4:
        for word in terms.words:
            if len(word) >= 4 and fuzz.ratio(norm, word) >= 80:
                return "name"
    return None


@dataclass(frozen=True)
class TermHit:
    """Where a header term was read in a text, and how many of its characters were not."""

    start: int
    end: int
    kind: str
    missing_left: int = 0
    missing_right: int = 0


def term_hits(text: str, terms: PhiTerms) -> list[TermHit]:
    """Identifier, date and phrase terms found in ``text`` (exact, fuzzy or as a fragment).

    ``missing_left`` / ``missing_right`` count the term's characters absent from the text on
    either side of a fragment hit: the detector lost them, the fill must still cover them.
    """
    index = [i for i, ch in enumerate(text.upper()) if ch.isalnum()]
    norm = normalise(text)
    hits: list[TermHit] = []
    for kind, pool in (("id", terms.ids), ("date", terms.dates), ("phrase", terms.phrases)):
        hay = letterise(norm) if kind == "phrase" else norm
        for term in pool:
            for start, end, left, right in _find_fuzzy(hay, term, numeric=kind != "phrase"):
                hits.append(TermHit(index[start], index[end - 1] + 1, kind, left, right))
    return hits


def _substring_hits(text: str, terms: PhiTerms) -> list[tuple[int, int, str]]:
    """Spans of ``text`` whose normalised characters contain an ID or a date spelling."""
    return [(h.start, h.end, h.kind) for h in term_hits(text, terms)]


def _find_fuzzy(haystack: str, needle: str, numeric: bool) -> list[tuple[int, int, int, int]]:
    """Exact, fuzzy or fragment matches of ``needle``: (start, end, missing left / right).

    Fragments of ``numeric`` terms (identifiers, dates) must hold digits themselves.
    """
    if not haystack:
        return []
    pos = haystack.find(needle)
    if pos >= 0:
        return [(pos, pos + len(needle), 0, 0)]
    if len(needle) >= 6 and len(needle) <= len(haystack) + 1:
        align = fuzz.partial_ratio_alignment(needle, haystack)
        span = align.dest_end - align.dest_start if align is not None else 0
        if align is not None and align.score >= 85 and span >= len(needle) - 2:
            left, right = align.src_start, len(needle) - align.src_end
            return [(align.dest_start, align.dest_end, left, right)]
    if len(needle) < MIN_PARTIAL + 1 or len(haystack) < MIN_PARTIAL:
        return []
    if numeric and (_digits(needle) * 2 < len(needle) or _digits(haystack) < 3):
        return []
    match = SequenceMatcher(None, haystack, needle, autojunk=False).find_longest_match()
    part = haystack[match.a : match.a + match.size]
    if match.size < MIN_PARTIAL or (numeric and _digits(part) < 3):
        return []
    left, right = match.b, len(needle) - match.b - match.size
    return [(match.a, match.a + match.size, left, right)]


def _digits(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


_LOOKALIKE = str.maketrans("0152867", "OISZBGT")


def letterise(norm: str) -> str:
    """Digits OCR commonly reads for letters (0 for O, 1 for I...) turned back into letters."""
    return norm.translate(_LOOKALIKE)


def pattern_hits(text: str) -> list[tuple[int, int, str]]:
    """Spans of dates, long identifiers and phone numbers found by pattern."""
    hits: list[tuple[int, int, str]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if pattern is not _DATE_PATTERNS[0] or _plausible_date([str(g) for g in m.groups()]):
                hits.append((m.start(), m.end(), "date_pattern"))
    for m in _ID_PATTERN.finditer(text):
        if sum(ch.isdigit() for ch in m.group()) >= 6:
            hits.append((m.start(), m.end(), "id_pattern"))
    hits.extend((m.start(), m.end(), "phone_pattern") for m in _PHONE_PATTERN.finditer(text))
    return hits


def _plausible_date(groups: Sequence[str]) -> bool:
    a, b, c = (int(g) for g in groups)
    if len(groups[0]) == 4:
        return 1 <= b <= 12 and 1 <= c <= 31
    if len(groups[2]) not in (2, 4):
        return False
    return (1 <= a <= 12 and 1 <= b <= 31) or (1 <= b <= 12 and 1 <= a <= 31)


def _allowed(token: str, allow: Sequence[re.Pattern[str]]) -> bool:
    clean = token.strip(".,:;()[]").upper()
    return not clean or any(p.fullmatch(clean) for p in allow)


def compile_allow(patterns: Sequence[str] = DEFAULT_ALLOW) -> tuple[re.Pattern[str], ...]:
    """Compile allow-list regexes (matched against whole upper-cased tokens)."""
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def phi_spans(
    text: str,
    terms: PhiTerms,
    redact_all: bool = False,
    allow: Sequence[re.Pattern[str]] = (),
) -> list[tuple[int, int, str]]:
    """Character spans of ``text`` to redact, each with a short reason word."""
    text = fold_accents(text)  # one for one: spans index the original text
    spans = [*_substring_hits(text, terms), *pattern_hits(text)]
    for start, end, token in _word_spans(text):
        if _word_hit(token, terms) is not None:
            spans.append((*_grow_name(text, start, end), "name"))
    if redact_all:
        spans.extend(
            (start, end, "all_text")
            for start, end, token in _token_spans(text)
            if not _allowed(token, allow)
        )
    return join_labels(text, merge_spans(spans))


def _grow_name(text: str, start: int, end: int) -> tuple[int, int]:
    """Grow a name hit over the letters and punctuation of its token (not over numbers)."""

    def part_of_name(i: int) -> bool:
        ch = text[i]
        before = text[i - 1] if i > 0 else " "
        after = text[i + 1] if i + 1 < len(text) else " "
        if ch.isalpha():
            return True
        if ch.isdigit():
            return before.isalpha() and after.isalpha()  # an O read as 0 inside a word
        return not ch.isspace() and before.isalpha() and after.isalpha()  # DOE~JOHN

    while start > 0 and part_of_name(start - 1):
        start -= 1
    while end < len(text) and part_of_name(end):
        end += 1
    return start, end


_LABELS = frozenset(
    (
        "ID",
        "MRN",
        "DOB",
        "ACC",
        "ACCESSION",
        "NAME",
        "PATIENT",
        "PT",
        "DATE",
        "BORN",
        "PID",
        "NO",
        "TEL",
        "PHONE",
    )
)


def join_labels(text: str, spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Grow spans over a preceding field label ("DOB:", "ID") and close short gaps between them."""
    grown: list[tuple[int, int, str]] = []
    for start, end, reason in spans:
        head = text[:start].rstrip()
        for label in (re.search(r"(\S+)$", head), re.search(r"([A-Za-z]{2,9} ?:?)$", head)):
            if label and _is_label(label.group(1)):
                start = label.start(1)
                break
        grown.append((start, end, reason))
    out: list[tuple[int, int, str]] = []
    for start, end, reason in merge_spans(grown):
        gap = text[out[-1][1] : start] if out else "x"
        if out and len(gap) <= 6 and len(gap.strip()) <= 3:  # "DOE, JOHN [M] 1943"
            out[-1] = (out[-1][0], end, out[-1][2])
        else:
            out.append((start, end, reason))
    return out


def _is_label(token: str) -> bool:
    """A field label such as ``DOB:`` or ``ID`` (also ``DOB:1``: a label with a stray char)."""
    if len(token) > 10 or len(normalise(token)) < 2:
        return False
    if token.endswith(":") or normalise(token) in _LABELS:
        return True
    head = re.match(r"([A-Za-z]{2,9})[:.]", token)
    return head is not None and normalise(head.group(1)) in _LABELS


def merge_spans(spans: Iterable[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Merge overlapping character spans, keeping the first reason of each group."""
    out: list[tuple[int, int, str]] = []
    for start, end, reason in sorted(spans):
        if out and start <= out[-1][1]:
            prev = out[-1]
            out[-1] = (prev[0], max(prev[1], end), prev[2])
        else:
            out.append((start, end, reason))
    return out
