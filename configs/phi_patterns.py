"""Patterns for PHI in free text that the header does not carry, and a name rule without NER.

:func:`pattern_spans` finds, in any text, the spans that have the shape of PHI whatever the
header says:

- phone numbers: international (``+44 20 7946 0958``), national (``020 7946 0958``,
  ``(555) 123-4567``, ``030/1234567``, ``03-1234-5678``) or any number after ``Tel``, ``Fax``,
  ``Bleep``;
- e-mail addresses and URLs;
- street addresses (``12 Elm Street``, ``Hauptstraße 12``, ``ul. Marszałkowska 10``,
  ``5 rue de Rivoli``, ``PO Box 12``) and postcodes (UK, US after a state, Canada,
  ``, 10115 Berlin``, ``〒100-0001``);
- dates in every common spelling (``17/07/1961``, ``1961-07-17``, ``17.07.61``, ``19610717``,
  ``17 Jul 1961``, ``July 17th, 1961``, ``17. Juli 1961``, ``July 1961``, ``1961年7月17日``)
  and times (``10:15``, ``9:15 am``, ``1430 hrs``, ``14 Uhr``);
- ages (``54-year-old``, ``54 y/o``, ``aged 54``, ``054Y``);
- identifiers next to a label (``MRN 5550123``, ``Acc: A12345``, ``NHS No 485 777 3456``),
  long numbers;
- person names after a title (``Dr``, ``Mr``, ``Mrs``, ``Ms``, ``Prof``, ``Herr`` ...) or a
  label (``Patient:``, ``referred by``, ``Dear``).

No maintained named-entity model installs from PyPI here (the spaCy models are published
elsewhere), so names that the header does not carry are found by those title and label rules
only: capitalised words (up to three, with ``van``/``de``-style particles) after them.

Each kind is a set of regular expressions plus, where the shape alone is too loose, a check in
Python (a date's month and day, a phone number's digit count, a capitalised city).  Kinds that
need a digit are skipped for text without one.  Pure functions over strings: this module
imports no room.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator

Span = tuple[int, int, str]  # start, end, kind
SPAN_CACHE_SIZE = 4096  # distinct texts whose spans are kept (an LRU: bounded memory)

_FLAGS = re.IGNORECASE
_DIGIT = re.compile(r"\d")
# A Latin word character.  Values are anchored against these only: text in scripts written
# without spaces (電話03-1234-5678, 1961年7月17日生) runs straight into the value.
_W = r"0-9A-Za-z_\u00c0-\u024f"
_B = rf"(?<![{_W}])"  # not right after a word character
_E = rf"(?![{_W}])"  # not right before one
_BD = rf"(?<![{_W}.])"  # nor after a dot (1.2.3.4 is not a date or a phone number)

# ---------------------------------------------------------------- phone numbers
_PHONE_INTERNATIONAL = re.compile(rf"(?<![{_W}+])\+\d[\d ().\-/]{{6,22}}\d(?!\d)")
_PHONE_NATIONAL = re.compile(
    rf"(?<![{_W}.+/])\(?0\d{{1,4}}\)?[ .\-/]?\d{{2,4}}(?:[ .\-]?\d{{2,4}}){{1,3}}"
    rf"(?![{_W}.]?\d)"
)
_PHONE_NANP = re.compile(rf"{_BD}(?:\(\d{{3}}\)\s?|\d{{3}}[ .-])\d{{3}}[ .-]\d{{4}}(?![{_W}.]?\d)")
_PHONE_LABELLED = re.compile(
    r"\b(?:tel(?:ephone)?|phone|ph|fax|mobile|mob|cell|pager|bleep|ext(?:ension)?|handy)\b\.?"
    r"(?:\s?(?:no|number|nr)\b\.?)?\s*[:#]?\s*(?P<v>\+?\d[\d ().\-/]{2,20}\d)",
    _FLAGS,
)

# ---------------------------------------------------------------- e-mail and URLs
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\b(?:(?:https?|ftp)://|www\.)[^\s<>\"'\])]+", _FLAGS)

# ---------------------------------------------------------------- dates and times
_MONTH = (
    r"(?:jan(?:uary|uar|vier)?|feb(?:ruary|ruar)?|f[ée]vr(?:ier)?|mar(?:ch|s)?|m(?:ä|ae)rz"
    r"|apr(?:il)?|avr(?:il)?|may|mai|jun[ei]?|juin|jul[yi]?|juil(?:let)?|aug(?:ust)?|ao[uû]t"
    r"|sep(?:t(?:ember|embre)?)?|oct(?:ober|obre)?|okt(?:ober)?|nov(?:ember|embre)?"
    r"|d[eé]c(?:ember|embre)?|dez(?:ember)?)\.?"
)
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th|\.)?"
_YEAR = r"(?:1[89]|2[01])?\d{2}"
_FULL_YEAR = r"(?:1[89]|2[01])\d{2}"
_SEP = r"[ \-/.,]{0,3}"
# a date may run on into a time (1961-07-17T10:15), but not into another word or number
_DATE_NUMERIC = re.compile(
    rf"{_BD}(\d{{1,4}})([./-])(\d{{1,2}})\2(\d{{2,4}})(?!(?!T\d)[{_W}]|\.\d)"
)
_DATE_COMPACT = re.compile(
    r"(?<!\d)(?:1[89]|2[01])\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])"
    r"(?:[0-2]\d[0-5]\d(?:[0-5]\d(?:\.\d{1,6})?)?)?(?!\d)"
)
_DATE_NAMED = (
    re.compile(
        rf"(?<![{_W}.:])(?P<d>{_DAY}){_SEP}(?P<m>{_MONTH})(?:{_SEP}(?P<y>{_YEAR}))?{_E}", _FLAGS
    ),
    re.compile(rf"{_B}(?P<m>{_MONTH}){_SEP}(?P<d>{_DAY})(?:{_SEP}(?P<y>{_YEAR}))?{_E}", _FLAGS),
    re.compile(rf"{_B}(?P<m>{_MONTH}){_SEP}(?P<y>{_FULL_YEAR}){_E}", _FLAGS),
    re.compile(rf"{_BD}(?P<y>{_FULL_YEAR}){_SEP}(?P<m>{_MONTH}){_SEP}(?P<d>{_DAY}){_E}", _FLAGS),
)
# 1961年7月17日, 1961年7月 (Japanese and Chinese; 년/월/일 Korean)
_DATE_CJK = re.compile(r"\d{2,4}\s?[年년]\s?\d{1,2}\s?[月월](?:\s?\d{1,2}\s?[日일])?")
# month words that are also everyday words: only as a date when capitalised or with a year
_AMBIGUOUS_MONTHS = frozenset({"may", "mar", "mars", "mai", "jan", "jun", "dec", "sept", "sep"})
_TIME_COLON = re.compile(
    r"(?<![\d:.])(?P<h>[01]?\d|2[0-3]):[0-5]\d(?P<s>:[0-5]\d(?:\.\d{1,6})?)?"
    r"(?P<ap>\s?[ap]\.?m\b\.?)?(?![\d:])",
    _FLAGS,
)
_TIME_MERIDIEM = re.compile(
    r"(?<![\d.:])(?:1[0-2]|0?[1-9])(?:[.:][0-5]\d)?\s?[ap]\.?m\b\.?", _FLAGS
)
_TIME_HOURS = re.compile(
    r"(?<![\d.])(?:(?:[01]\d|2[0-3])[0-5]\d\s?(?:hrs?|h)\b|(?:[01]?\d|2[0-3])(?:[.:][0-5]\d)?"
    r"\s?Uhr\b)",
    _FLAGS,
)

# ---------------------------------------------------------------- ages
_AGES = (
    re.compile(rf"{_BD}\d{{1,3}}\s?-?\s?(?:years?|yrs?|yr)\s?-?\s?old\b", _FLAGS),
    re.compile(rf"{_BD}\d{{1,3}}\s?-?\s?(?:y/o|y\.o\.?|yo|yoa){_E}", _FLAGS),
    re.compile(r"\b(?:aged?|age:)\s*[:=]?\s*\d{1,3}(?:\s?(?:years?|yrs?|y)\b)?", _FLAGS),
    re.compile(rf"{_BD}\d{{1,3}}\s?-?\s?(?:jährige[rn]?|jahre alt|ans|años){_E}", _FLAGS),
    re.compile(rf"{_BD}(?:\d{{3}}[DWMY]|\d{{2}}Y){_E}"),
)

# ---------------------------------------------------------------- identifiers
_ID_LABEL = (
    r"(?:MRN|MR\s?No|UR\s?No|URN|PID|SSN|CHI|PESEL|NHS(?:\s?(?:No|Number))?"
    r"|Hosp(?:ital)?\s?(?:No|Number|ID)|Patient\s?(?:No|Number|ID)|Pat\.?\s?ID"
    r"|Accession(?:\s?(?:No|Number))?|Acc|ID|Case\s?(?:No|Number)|Study\s?ID"
    r"|Record\s?(?:No|Number)|Ref(?:erence)?\s?(?:No|Number)?|Order\s?(?:No|Number)"
    r"|Insurance\s?(?:No|Number)|Versichertennummer|Fallnummer|Aktenzeichen)"
)
_ID_LABELLED = re.compile(
    rf"\b{_ID_LABEL}\b\.?\s*(?:no\b\.?|number|nr\b\.?|#)?\s*[:#=]?\s*"
    r"(?P<v>[A-Za-z]{0,4}[-/]?\d[\w/-]*(?:\s\d{3,4}){0,2})",
    _FLAGS,
)
_ID_LONG = re.compile(rf"{_BD}[A-Za-z]{{0,3}}\d{{7,}}(?![{_W}.])")
_ID_SSN = re.compile(rf"(?<![{_W}.-])\d{{3}}-\d{{2}}-\d{{4}}(?![{_W}-])")

# ---------------------------------------------------------------- addresses and postcodes
_STREET_SUFFIX = (
    r"(?:Street|St\.?|Road|Rd\.?|Avenue|Ave\.?|Lane|Ln\.?|Drive|Boulevard|Blvd\.?|Way|Close"
    r"|Court|Ct\.?|Place|Pl\.?|Square|Sq\.?|Terrace|Crescent|Parkway|Pkwy\.?|Highway|Hwy\.?"
    r"|Row|Mews|Gardens|Grove|Hill|Walk|Park)"
)
_STREET_WORDS = r"(?:[^\W\d_][\w'.-]*\s+){1,3}?"
_HOUSE_NUMBER = rf"\d{{1,4}}[a-zA-Z]?(?:\s?[/-]\s?\d{{1,4}})?{_E}"
_ADDRESSES = (
    re.compile(  # 12 Elm Street, 221B Baker Street
        rf"{_BD}\d{{1,5}}[A-Za-z]?(?:[-/]\d{{1,5}}[A-Za-z]?)?,?\s+"
        rf"(?:[^\W\d_][\w'.-]*\s+){{0,4}}?{_STREET_SUFFIX}{_E}"
    ),
    re.compile(  # 5 rue de Rivoli
        rf"{_BD}\d{{1,4}}(?:bis|ter)?,?\s+(?:rue|avenue|av\.|boulevard|bd|place|chemin|allée"
        r"|impasse|quai)(?:\s+(?:de|du|des|la|le|d'|del|della|di)?\s*[^\W\d_][\w'-]*){1,3}",
        _FLAGS,
    ),
    re.compile(  # Hauptstraße 12, ul. Marszałkowska 10/12
        rf"{_B}(?:[^\W\d_][\w'-]*(?:straße|strasse|str\.|weg|allee|platz|gasse|damm|laan"
        r"|straat|gracht|plein|vej|gade|gatan|vägen)|(?:ul\.|ulica|al\.|aleja)\s+"
        rf"{_STREET_WORDS})\s*{_HOUSE_NUMBER}",
        _FLAGS,
    ),
    re.compile(  # Via Roma 5, Calle Mayor 3
        rf"\b(?:Via|Viale|Calle|Avenida|Rua|Piazza|Plaza)\s+{_STREET_WORDS}\s*{_HOUSE_NUMBER}"
    ),
    re.compile(r"\bP\.?\s?O\.?\s?Box\s+\d+", _FLAGS),
)
_US_STATES = (
    "AL|AK|AZ|AR|CA|CO|CT|DE|DC|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH"
    "|NJ|NM|NY|NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY"
)
_POSTCODES = (
    re.compile(  # UK: SW1A 1AA (the inward code has no C, I, K, M, O or V: 5MM is no postcode)
        rf"(?<![{_W}-])(?:[A-Z]{{1,2}}\d[A-Z\d]?|GIR)\s?\d[ABD-HJLNP-UW-Z]{{2}}(?![{_W}-])"
    ),
    re.compile(rf"\b(?:{_US_STATES})\s+\d{{5}}(?:-\d{{4}})?{_E}"),  # US, after a state
    re.compile(rf"(?<![{_W}-])\d{{5}}-\d{{4}}(?![{_W}-])"),  # ZIP+4
    re.compile(  # Canada: K1A 0B1
        rf"(?<![{_W}-])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z]\s?\d[ABCEGHJ-NPRSTV-Z]\d{_E}"
    ),
    re.compile(r"〒\s?\d{3}-?\d{4}"),
)
_POSTCODE_CITY = re.compile(
    r"(?:(?<=,)\s*|\b[A-Z]{1,2}-)(?P<v>\d{4,5}|\d{2}-\d{3})\s+(?P<c>[^\W\d_][\w-]{2,})"
)

# ---------------------------------------------------------------- names after titles / labels
_TITLE = re.compile(
    rf"{_BD}(?:(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Sir|Dame|Herr|Frau|Dott|Mme|Mlle"
    r"|Dra|Sr|Sra)\.?|(?:DR|MR|MRS|MS|PROF)\.)(?=\s)"
)
_NAME_LABEL = re.compile(
    r"\b(?:(?:(?:electronically\s+)?signed|referred|reported|dictated|verified|reviewed|seen"
    r"|examined|transcribed|approved|performed|read)\s+by|dear|attn\.?|c/o)\s*:?(?=\s)"
    r"|\b(?:patient(?:'s)?\s+name|patient|name|pt|referring\s+(?:physician|doctor|clinician)"
    r"|referrer|physician|radiologist|consultant|attending|gp|clinician|doctor|technologist"
    r"|radiographer|sonographer|nurse|author|operator|contact|to|from|cc)\s*:(?=\s)",
    _FLAGS,
)
_NAME_WORD = re.compile(r"\s*([^\W\d_][\w'’.-]*)")
_PARTICLES = frozenset(
    {"van", "von", "de", "der", "den", "da", "di", "du", "la", "le", "del", "della", "bin", "al"}
)
_TITLE_SKIP = frozenset({"med.", "rer.", "nat.", "h.c.", "habil.", "dent.", "phil."})
_TITLE_WORDS = re.compile(r"(?:Dr|Mr|Mrs|Ms|Mx|Miss|Prof|Professor|Sir|Dame|Herr|Frau)\.?")
MAX_NAME_WORDS = 3
MAX_PARTICLES = 2  # van der, de la


def _plausible_numeric_date(match: re.Match[str]) -> bool:
    first, second, year = match.group(1), match.group(3), match.group(4)
    if len(year) == 3 or (len(first) == 4 and len(year) == 4):
        return False
    if len(first) == 4:  # 1961-07-17: year, month, day
        return 1 <= int(second) <= 12 and 1 <= int(year) <= 31
    if len(first) == 3 or (len(year) == 4 and not 1800 <= int(year) <= 2199):
        return False
    a, b = int(first), int(second)
    return 1 <= a <= 31 and 1 <= b <= 31 and min(a, b) <= 12


def _named_date_ok(match: re.Match[str]) -> bool:
    month = match.group("m").rstrip(".")
    if month.islower() and month in _AMBIGUOUS_MONTHS and not match.group("y"):
        return False
    return match.groupdict().get("d") is not None or match.group("y") is not None


def _date_spans(text: str) -> Iterator[Span]:
    for match in _DATE_NUMERIC.finditer(text):
        if _plausible_numeric_date(match):
            yield match.start(), match.end(), "date"
    for pattern in (_DATE_COMPACT, _DATE_CJK):
        yield from ((m.start(), m.end(), "date") for m in pattern.finditer(text))
    for pattern in _DATE_NAMED:
        for match in pattern.finditer(text):
            if _named_date_ok(match):
                yield match.start(), match.end(), "date"


def _time_spans(text: str) -> Iterator[Span]:
    for match in _TIME_COLON.finditer(text):
        short = len(match.group("h")) == 1 and not (match.group("s") or match.group("ap"))
        if not short or text[: match.start()].rstrip().lower().endswith(("at", "@", "um")):
            yield match.start(), match.end(), "time"
    for pattern in (_TIME_MERIDIEM, _TIME_HOURS):
        yield from ((m.start(), m.end(), "time") for m in pattern.finditer(text))


def _digit_count(text: str) -> int:
    return sum(ch.isdigit() for ch in text)


def _phone_spans(text: str) -> Iterator[Span]:
    for pattern, low, high in ((_PHONE_INTERNATIONAL, 8, 15), (_PHONE_NATIONAL, 9, 12)):
        for match in pattern.finditer(text):
            if low <= _digit_count(match.group()) <= high:
                yield match.start(), match.end(), "phone"
    yield from ((m.start(), m.end(), "phone") for m in _PHONE_NANP.finditer(text))
    for match in _PHONE_LABELLED.finditer(text):
        if _digit_count(match.group("v")) >= 4:
            yield match.start("v"), match.end("v"), "phone"


def _id_spans(text: str) -> Iterator[Span]:
    for match in _ID_LABELLED.finditer(text):
        yield match.start("v"), match.end("v"), "id"
    for pattern in (_ID_LONG, _ID_SSN):
        yield from ((m.start(), m.end(), "id") for m in pattern.finditer(text))


def _address_spans(text: str) -> Iterator[Span]:
    for pattern in _ADDRESSES:
        yield from ((m.start(), m.end(), "address") for m in pattern.finditer(text))
    for pattern in _POSTCODES:
        yield from ((m.start(), m.end(), "postcode") for m in pattern.finditer(text))
    for match in _POSTCODE_CITY.finditer(text):
        if match.group("c")[0].isupper():
            yield match.start("v"), match.end("c"), "postcode"


def _age_spans(text: str) -> Iterator[Span]:
    for pattern in _AGES:
        yield from ((m.start(), m.end(), "age") for m in pattern.finditer(text))


def _web_spans(text: str) -> Iterator[Span]:
    yield from ((m.start(), m.end(), "email") for m in _EMAIL.finditer(text))
    for match in _URL.finditer(text):
        url = match.group().rstrip(".,;:!?")
        yield match.start(), match.start() + len(url), "url"


def _name_after(text: str, pos: int) -> tuple[int, int] | None:
    """The capitalised words (a person name) that start at ``pos``, or None."""
    start = end = -1
    words = particles = 0
    while words < MAX_NAME_WORDS:
        match = _NAME_WORD.match(text, pos)
        if match is None:
            break
        word = match.group(1)
        if word.lower() in _TITLE_SKIP or (start < 0 and _TITLE_WORDS.fullmatch(word)):
            pos = match.end()
            continue
        if word.lower() in _PARTICLES and start >= 0 and particles < MAX_PARTICLES:
            particles, pos = particles + 1, match.end()
            continue
        if not word[0].isupper():
            break
        start = match.start(1) if start < 0 else start
        end, pos, words, particles = match.end(1), match.end(), words + 1, 0
    if start < 0:
        return None
    while end > start and text[end - 1] in ".,;:'’-" and not _is_initial(text[start:end]):
        end -= 1
    return start, end


def _is_initial(word: str) -> bool:
    return len(word) == 2 and word[0].isupper() and word[1] == "."


def _name_spans(text: str) -> Iterator[Span]:
    for pattern in (_TITLE, _NAME_LABEL):
        for match in pattern.finditer(text):
            found = _name_after(text, match.end())
            if found is not None:
                yield found[0], found[1], "name"


_DIGIT_KINDS: tuple[Callable[[str], Iterator[Span]], ...] = (
    _date_spans,
    _time_spans,
    _phone_spans,
    _id_spans,
    _address_spans,
    _age_spans,
)


@functools.lru_cache(maxsize=SPAN_CACHE_SIZE)
def pattern_spans(text: str) -> tuple[Span, ...]:
    """Every span of ``text`` that has the shape of PHI, as ``(start, end, kind)``.

    Kinds: ``phone``, ``email``, ``url``, ``address``, ``postcode``, ``date``, ``time``,
    ``age``, ``id`` and ``name``.  Spans may overlap; they index ``text`` itself.  Results are
    cached (:data:`SPAN_CACHE_SIZE` texts): the descriptors of a series repeat in every
    instance, and the verify pass reads again the text that cleaning left.
    """
    if len(text) < 2:
        return ()
    spans: list[Span] = list(_name_spans(text))
    if "@" in text or "://" in text or "www." in text.lower():
        spans.extend(_web_spans(text))
    if _DIGIT.search(text) is not None:
        for kind in _DIGIT_KINDS:
            spans.extend(kind(text))
    return tuple(s for s in spans if s[1] > s[0])
