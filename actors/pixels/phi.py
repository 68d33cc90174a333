"""Deciding which recognised text is PHI: header values, field labels, patterns, allow lists.

A span of a recognised line is PHI when it matches a value of the instance's own header (names
in any order, with initials; identifiers; dates in any spelling), when it is the value written
after a field label (``Name:``, ``DOB``, ``Study Date:``, ``Sonographer:``) whatever the header
says, or when it has the shape of a date, a time, an age, a long identifier or a phone number.
Under ``redact_all_text`` every other token is PHI too, except the allow list's markers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from pydicom.dataset import Dataset
from rapidfuzz import fuzz
from rapidfuzz.distance import Levenshtein

from dxai.actors.pixels.allow import all_text_spans
from dxai.configs.phi import (
    MONTH_PATTERN,
    NAMED_SEPARATORS,
    NUMERIC_SEPARATORS,
    date_spellings,
    fold_accents,
    normalise,
)
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
# between the parts of a written date: the separators of the shared vocabulary (configs.phi),
# numeric ones between numbers, any of them (or a dot and a space: "Jan. 06") around a month name
_NUM_SEP = "[" + re.escape("".join(NUMERIC_SEPARATORS)) + "]"
_NAMED_SEP = (
    "[" + re.escape("".join(sorted({*"".join(NAMED_SEPARATORS + NUMERIC_SEPARATORS)}))) + "]{0,2}"
)
_DAY = r"\d{1,2}(?:ST|ND|RD|TH)?"
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z])", r"(?![0-9A-Za-z])"
_DATE_PATTERNS = (
    # 06.01.2008, 2008/01/06, 6/1/08 (checked by _plausible_date)
    re.compile(rf"(?<![\d.])(\d{{1,4}}){_NUM_SEP}(\d{{1,2}}){_NUM_SEP}(\d{{2,4}})(?![\d.])"),
    # 06-Jan-2008, 6 January 08, 06JAN2008
    re.compile(
        rf"{_EDGE_L}{_DAY}{_NAMED_SEP}{MONTH_PATTERN}{_NAMED_SEP},?\s?(?:\d{{4}}|\d{{2}}){_EDGE_R}",
        re.IGNORECASE,
    ),
    # Jan 6, 2008, January 6th 2008, Jan-06-2008
    re.compile(rf"{_EDGE_L}{MONTH_PATTERN}{_NAMED_SEP}{_DAY},?{_NAMED_SEP}\d{{4}}{_EDGE_R}", re.I),
    # 2008 Jan 06, 2008-JAN-6, 1999 Sep23
    re.compile(rf"(?<!\d)\d{{4}}{_NAMED_SEP}{MONTH_PATTERN}{_NAMED_SEP}{_DAY}{_EDGE_R}", re.I),
    # 20080106
    re.compile(r"(?<!\d)(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?!\d)"),
)
# 14:32, 2:56:22 PM, 08:48:26 a.m.; 2: 09: 04 (OCR reads a space after a colon)
_TIME_PATTERN = re.compile(
    r"(?<![\d:.])(?:[01]?\d|2[0-3])\s?:\s?[0-5]\d(?:\s?:\s?[0-5]\d)?(?:\s?[AP]\.?M\.?)?(?![\d:])",
    re.I,
)
# 57Y, 057Y, 57 yrs, 57 y/o, Age 57, Age:57
_AGE_PATTERNS = (
    re.compile(rf"{_EDGE_L}\d{{1,3}}\s?(?:Y/O|Y\.O\.?|YEARS?|YRS|YR|YO|Y){_EDGE_R}", re.I),
    re.compile(rf"{_EDGE_L}AGE\s?[:=]?\s?\d{{1,3}}(?:\s?(?:Y|YR|YRS|YEARS?)\.?)?{_EDGE_R}", re.I),
)
_ID_PATTERN = re.compile(r"(?<![\w.])[A-Z]{0,3}\d[\d-]{4,}\d[A-Z]?(?![\w.])", re.IGNORECASE)
# the same read by OCR, which takes a digit for a letter that looks like it (MRNI23456, 77345Z1,
# MAN123a55) and glues the number to its label (IDMAN123a55): at most two such letters, at
# least five real digits (ordinary words have none)
_ID_OCR_PATTERN = re.compile(
    r"(?<![\d.])[A-Z]{0,3}(?P<core>[\dOIlSZBA][\dOIlSZBA-]{4,}[\dOIlSZBA])[A-Z]?(?![\w.])",
    re.IGNORECASE,
)
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
    # first letters of the parts of person names (``DOE^JOHN`` -> D, J): initials next to a name
    initials: frozenset[str] = frozenset()

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
    initials: set[str] = set()
    for raw in values:
        value = fold_accents(raw)
        initials |= _initials(value)
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
    return PhiTerms(
        frozenset(words), frozenset(ids), frozenset(dates), frozenset(phrases), frozenset(initials)
    )


def _initials(value: str) -> set[str]:
    """First letters of the parts of a person name (a value with ``^``), upper-case."""
    if "^" not in value:
        return set()
    parts = (normalise(p) for p in re.split(r"[\^\s]+", value))
    return {p[0] for p in parts if p and p[0].isalpha()}


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
    """Spans of dates, times, ages, long identifiers and phone numbers found by pattern."""
    hits: list[tuple[int, int, str]] = []
    for pattern in _DATE_PATTERNS:
        for m in pattern.finditer(text):
            if pattern is not _DATE_PATTERNS[0] or _plausible_date([str(g) for g in m.groups()]):
                hits.append((m.start(), m.end(), "date_pattern"))
    hits.extend((m.start(), m.end(), "time_pattern") for m in _TIME_PATTERN.finditer(text))
    for pattern in _AGE_PATTERNS:
        hits.extend((m.start(), m.end(), "age_pattern") for m in pattern.finditer(text))
    for m in _ID_PATTERN.finditer(text):
        if sum(ch.isdigit() for ch in m.group()) >= 6:
            hits.append((m.start(), m.end(), "id_pattern"))
    for m in _ID_OCR_PATTERN.finditer(text):
        misread = sum(not ch.isdigit() and ch != "-" for ch in m.group("core"))
        if 1 <= misread <= 2 and sum(ch.isdigit() for ch in m.group()) >= 5:
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


def compile_allow(patterns: Sequence[str] = DEFAULT_ALLOW) -> tuple[re.Pattern[str], ...]:
    """Compile allow-list regexes (each matches one whole marker: see ``allow.py``)."""
    return tuple(re.compile(p, re.IGNORECASE) for p in patterns)


def phi_spans(
    text: str,
    terms: PhiTerms,
    redact_all: bool = False,
    allow: Sequence[re.Pattern[str]] = (),
    starts: Sequence[int] = (0,),
) -> list[tuple[int, int, str]]:
    """Character spans of ``text`` to redact, each with a short reason word.

    ``starts``: where the lines ``text`` was joined from begin (a label there needs no colon).
    """
    text = fold_accents(text)  # one for one: spans index the original text
    spans = [*_substring_hits(text, terms), *pattern_hits(text), *_name_spans(text, terms)]
    spans.extend(
        (label.start, label.value_end, "label")
        for label in label_values(text, starts)
        if label.value_end > label.value_start
    )
    if redact_all:
        spans.extend(all_text_spans(text, allow, spans))
    return join_labels(text, merge_spans(spans))


def legible_phi(
    text: str,
    terms: PhiTerms,
    redact_all: bool = False,
    allow: Sequence[re.Pattern[str]] = (),
    before: str | None = None,
) -> bool:
    """Whether PHI is still readable in ``text``, a line read again after a fill touched it.

    Header values, labels and patterns always count.  Under ``redact_all`` any text that is
    not an allowed marker counts too; given the line as read before the fill (``before``), only
    a token of two characters or more that resembles what was filled: read again, a line with a
    fill in it also yields misread markers (``TH!`` for ``THI``) and characters made up over the
    fill, and neither is PHI.
    """
    text = fold_accents(text)
    if phi_spans(text, terms, False, allow):
        return True
    residue = [text[s:e] for s, e, _ in all_text_spans(text, allow)] if redact_all else []
    if before is None or not residue:
        return bool(residue)
    before = fold_accents(before)
    filled = normalise(" ".join(before[s:e] for s, e, _ in phi_spans(before, terms, True, allow)))
    return any(_resembles(normalise(token), filled) for token in residue)


def _resembles(token: str, filled: str) -> bool:
    """A token read after a fill that may be what the fill was over (or part of it)."""
    return len(token) >= 2 and bool(filled) and fuzz.partial_ratio(token, filled) >= 80


def _name_spans(text: str, terms: PhiTerms) -> list[tuple[int, int, str]]:
    """Words matching a header name, grown over their token and adjacent initials."""
    out: list[tuple[int, int, str]] = []
    for start, end, token in _word_spans(text):
        if _word_hit(token, terms) is not None:
            out.append((*_grow_initials(text, *_grow_name(text, start, end), terms), "name"))
    return out


# an initial before a name (J. Smith), after it (Smith J, SMITH, J.), a sex letter after it; a
# bare L or R next to a name is laterality (a marker OCR read on the same line), L. or R. is not
_INITIAL_BEFORE = re.compile(r"(?<![0-9A-Za-z])(?:([A-Z])\.|([A-KM-QS-Z]))\s?$")
_INITIAL_AFTER = re.compile(r"^,?\s?(?:([A-Z])\.|([A-KM-QS-Z]))(?![0-9A-Za-z])")
_SEX_AFTER = re.compile(r"^,?\s?[\[(]?(?:M|F|O|MALE|FEMALE)[\])]?(?![0-9A-Za-z])")


def _grow_initials(text: str, start: int, end: int, terms: PhiTerms) -> tuple[int, int]:
    """Grow a name span over initials of the header's names next to it (J. R. Smith, Smith J)
    and over a sex letter right after it (DOE JOHN [M])."""
    for _ in range(3):
        m = _INITIAL_BEFORE.search(text[:start])
        if m is None or (m.group(1) or m.group(2)) not in terms.initials:
            break
        start = m.start()
    for _ in range(3):
        m = _INITIAL_AFTER.match(text[end:])
        if m is None or (m.group(1) or m.group(2)) not in terms.initials:
            break
        end += m.end()
    sex = _SEX_AFTER.match(text[end:])
    return start, end + (sex.end() if sex else 0)


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


# Field labels: the value written after one is PHI whatever the header says.
LABEL_WORDS = frozenset(
    {
        "NAME",
        "PATIENT",
        "PT",
        "DOB",
        "BIRTH",
        "BORN",
        "AGE",
        "SEX",
        "GENDER",
        "ID",
        "MRN",
        "ACC",
        "ACCESSION",
        "DATE",
        "INSTITUTION",
        "HOSPITAL",
        "PHYSICIAN",
        "PHYS",
        "REF",
        "REFERRING",
        "OPERATOR",
        "TECH",
        "TECHNOLOGIST",
        "SONOGRAPHER",
    }
)
# words that belong to a label standing after them ("Study Date", "Date of Birth", "Patient ID")
_LABEL_QUALIFIERS = frozenset(
    {"STUDY", "EXAM", "SERIES", "ACQUISITION", "SCAN", "PERFORMING", "ATTENDING", "OF", "NO"}
)
# labels that mark a value without a colon anywhere in a line (the others need a colon, or the
# start of a line: "Age 57" at the start of a line is a label, "5 cm Age" is not)
_STRONG_LABELS = frozenset({"NAME", "DOB", "MRN", "ACCESSION", "BORN"})
# a word of a label; 0 and 1 inside letters are OCR's O and I (D0B).  A word ends where a
# capital follows a small letter, and a run of capitals ends before a capitalised word: OCR
# often drops the spaces of small print ("InstitutionNameFrancis", "PatientID:")
_LABEL_WORD = re.compile(
    r"[A-Z](?:[A-Z]|[01](?=[A-Z]))*(?![a-z])\.?|[A-Za-z](?:[a-z]|[01](?=[a-z]))*\.?"
)
_LABEL_COLON = re.compile(r"\s*([:;#=\uff1a])\s*|\s*")
# continuation of a label's words: spaces only (none where OCR dropped them)
_LABEL_JOIN = re.compile(r"\s{0,2}")


@dataclass(frozen=True)
class LabelValue:
    """A field label in a line and the value after it: ``text[value_start:value_end]``."""

    start: int
    value_start: int
    value_end: int
    colon: bool


def label_values(text: str, starts: Sequence[int] = (0,)) -> list[LabelValue]:
    """Field labels in ``text`` and their values, left to right.

    A label is a label word (:data:`LABEL_WORDS`; an OCR misreading one letter of a word of
    three letters or more counts when a colon follows), with the label or qualifier words just
    before it ("Study Date", "Patient ID").  It needs a colon after it, or a digit glued to it
    (``MRN123``), or to begin a line (``starts``), or to be a strong label (``Name``, ``DOB``).
    Its value runs to the next label or the end of the line (empty when nothing follows).
    """
    found: list[tuple[int, int, bool]] = []  # label start, value start, colon
    run_start: int | None = None
    previous_end = -1
    for m in _LABEL_WORD.finditer(text):
        word = letterise(normalise(m.group()))
        sep = _LABEL_COLON.match(text, m.end())
        colon = sep is not None and sep.group(1) is not None
        if _colon_read_as_letter(word):  # "Namei KAUFMAN": the colon read as a letter
            word, colon = word[:-1], True
        joined = previous_end >= 0 and _LABEL_JOIN.fullmatch(text[previous_end : m.start()])
        run_start = run_start if joined and run_start is not None else m.start()
        if word in _LABEL_QUALIFIERS or (word in LABEL_WORDS and not colon):
            previous_end = m.end()
        else:
            previous_end = -1
        if not _label_word(word, colon):
            run_start = None if word not in _LABEL_QUALIFIERS else run_start
            continue
        value_start = sep.end() if sep is not None else m.end()
        glued = m.end() < len(text) and text[m.end()].isdigit()
        line_start = not text[:run_start].strip() or any(
            a <= run_start and not text[a:run_start].strip() for a in starts
        )
        if colon or glued or line_start or word in _STRONG_LABELS:
            found = [f for f in found if f[0] < run_start]  # "Patient" then "Patient ID"
            found.append((run_start, value_start, colon))
    return _close_values(text, found)


def _colon_read_as_letter(word: str) -> bool:
    """A label word with one more letter glued to it that small print's colon reads as."""
    return word not in LABEL_WORDS and word[-1:] in ("I", "L") and word[:-1] in LABEL_WORDS


def _label_word(word: str, colon: bool) -> bool:
    if word in LABEL_WORDS:
        return True
    if not colon or len(word) < 3:
        return False
    limit = 1 if len(word) < 7 else 2
    return any(
        abs(len(word) - len(label)) <= limit and Levenshtein.distance(word, label) <= limit
        for label in LABEL_WORDS
        if len(label) >= 3
    )


def _close_values(text: str, found: Sequence[tuple[int, int, bool]]) -> list[LabelValue]:
    """Each label's value ends where the next label starts, or at the end of the line."""
    out: list[LabelValue] = []
    for i, (start, value_start, colon) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        end = max(value_start, len(text[:end].rstrip()))
        out.append(LabelValue(start, min(value_start, end), end, colon))
    return out


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
