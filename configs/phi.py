"""The PHI vocabulary: month names, text folding and the written forms of a DICOM date.

Header de-identification (``dxai.actors.deid.phi``: the verify pass and the scrubbing of cleaned
text) and the burned-in pixel text matcher (``dxai.actors.pixels.phi``) both need to know how a
name or a date may be written.  That knowledge lives here once, so the two cannot drift apart:

- :func:`fold_accents` drops accents one character for one (``Müller`` -> ``Muller``), so that
  positions found in the folded text index the original text;
- :func:`fold_case` is the case- and accent-insensitive form used for whole-word search, with
  the name separators ``^`` and ``=`` read as spaces, also one character for one;
- :func:`normalise` keeps upper-case ASCII letters and digits only (the OCR matching form);
- :func:`date_variants` / :func:`date_spellings` give the written / normalised forms of a
  ``YYYYMMDD`` date (``1996-07-17``, ``07/17/1996``, ``17 Jul 1996``, ``17JUL1996`` ...);
- :func:`fold_text` is the matching form of free text: case, accents and transliteration folded
  (``Łukaszewicz`` -> ``lukaszewicz``, ``Straße`` -> ``strasse``, ``Søren`` -> ``soren``),
  punctuation read as single spaces (``Müller-Lüdenscheidt`` -> ``muller ludenscheidt``);
  :func:`fold_text_offsets` gives the same text with the original position of each character,
  and :func:`spelling_forms` the folded forms a value may be typed in (``Jürgen`` ->
  ``jurgen``, ``juergen``; ``Mueller`` -> ``mueller``, ``muller``).

Patterns for PHI that a header does not carry (phone numbers, addresses, dates in free text
...) are in :mod:`dxai.configs.phi_patterns`.

Pure functions over strings: this module imports no room.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# A month name as OCR reads it: abbreviated or in full, with I or 1 read for the L of JUL / JULY.
MONTH_PATTERN = r"(?:JAN|FEB|MAR|APR|MAY|JU[NLI1]E?|JU[LI1]Y?|AUG|SEPT?|OCT|NOV|DEC)[A-Z]*\.?"

# Orders in which a date's parts are written.  y: 4-digit year, yy: 2-digit year, m / d: 2-digit
# month / day, m1 / d1: month / day without a leading zero, mon: month name.
NUMERIC_ORDERS: tuple[tuple[str, str, str], ...] = (
    ("y", "m", "d"),
    ("m", "d", "y"),
    ("d", "m", "y"),
    ("m1", "d1", "y"),
    ("d1", "m1", "y"),
    ("m", "d", "yy"),
    ("d", "m", "yy"),
)
NAMED_ORDERS: tuple[tuple[str, str, str], ...] = (
    ("d", "mon", "y"),
    ("mon", "d", "y"),
    ("y", "mon", "d"),
    ("d1", "mon", "y"),
    ("mon", "d1", "y"),
    ("y", "mon", "d1"),
)
NUMERIC_SEPARATORS = ("-", "/", ".")
NAMED_SEPARATORS = ("-", " ", "")
# normalised spellings shorter than this (``1196`` for 1 Jan 1996) are too ambiguous to match
MIN_SPELLING = 6

_NAME_SEPARATORS = str.maketrans({"^": " ", "=": " ", "\t": " ", "\n": " ", "\r": " "})


def _fold_accent(ch: str) -> str:
    base = unicodedata.normalize("NFKD", ch)
    kept = "".join(c for c in base if not unicodedata.combining(c))
    return kept if len(kept) == 1 else ch  # one for one, or the character unchanged


def _fold_case(ch: str) -> str:
    plain = _fold_accent(ch)
    for folded in (plain.casefold(), plain.lower()):  # ß: casefold gives ss, lower keeps ß
        if len(folded) == 1:
            return folded
    return plain


class _Folds(dict[int, str]):
    """A ``str.translate`` table filled one code point at a time, each by one character."""

    def __init__(self, fold: Callable[[str], str], seed: dict[int, str]) -> None:
        super().__init__(seed)
        self._fold = fold

    def __missing__(self, code: int) -> str:
        folded = self._fold(chr(code))
        self[code] = folded
        return folded


_ACCENT_FOLDS = _Folds(_fold_accent, {})
_CASE_FOLDS = _Folds(_fold_case, {code: str(ch) for code, ch in _NAME_SEPARATORS.items()})


def fold_accents(text: str) -> str:
    """``text`` with accents dropped (Müller -> Muller), as an OCR model often reads it.

    Each character is replaced by exactly one character, so positions in the result index
    ``text``.  A character that does not decompose to one base letter (``ß``, ``ø``, the
    ligature ``ﬁ``) is kept as it is; :func:`normalise` upper-cases ``ß`` to ``SS``.
    """
    return text if text.isascii() else text.translate(_ACCENT_FOLDS)


def fold_case(text: str) -> str:
    """Case-folded without accents, name separators (``^``, ``=``) and line breaks as spaces.

    The form used for case- and accent-insensitive whole-word search.  Like
    :func:`fold_accents` it is one character for one, so positions index ``text``: each
    character is case-folded on its own (``Σ`` and final ``ς`` both give ``σ``), and one whose
    case fold is longer (``ß`` -> ``ss``, ``İ`` -> ``i̇``) is lower-cased, or kept, instead.
    """
    if text.isascii():
        return text.lower().translate(_NAME_SEPARATORS)
    return text.translate(_CASE_FOLDS)


def normalise(text: str) -> str:
    """Upper-case ASCII letters and digits only, accents folded (``Müller^J.`` -> ``MULLERJ``)."""
    return re.sub(r"[^0-9A-Z]", "", fold_accents(text).upper())


@dataclass(frozen=True)
class DateParts:
    """The parts of a ``YYYYMMDD`` date, each as it may be written."""

    y: str
    m: str
    d: str

    @property
    def fields(self) -> dict[str, str]:
        """Every written part by its name in :data:`NUMERIC_ORDERS` / :data:`NAMED_ORDERS`."""
        return {
            "y": self.y,
            "yy": self.y[2:],
            "m": self.m,
            "d": self.d,
            "m1": str(int(self.m)),
            "d1": str(int(self.d)),
            "mon": MONTHS[int(self.m) - 1],
        }


def parse_date(value: str) -> DateParts | None:
    """The date held by the first 8 digits of ``value`` (``DA``, ``DT``, ``2023.01.05``).

    Only the month is checked (01 to 12): a value such as ``20230231`` is not a calendar date
    but is still a PHI value whose spellings must be looked for.
    """
    digits = re.sub(r"\D", "", value)
    if len(digits) < 8 or not 1 <= int(digits[4:6]) <= 12:
        return None
    return DateParts(digits[:4], digits[4:6], digits[6:8])


def _forms(
    parts: DateParts, numeric_separators: Sequence[str], named_separators: Sequence[str]
) -> set[str]:
    fields = parts.fields
    out: set[str] = set()
    for orders, separators in (
        (NUMERIC_ORDERS, numeric_separators),
        (NAMED_ORDERS, named_separators),
    ):
        for order in orders:
            out.update(sep.join(fields[name] for name in order) for sep in separators)
    return out


@functools.lru_cache(maxsize=4096)
def date_variants(value: str) -> frozenset[str]:
    """Written forms of a date as found in free text (``1996-07-17``, ``17 Jul 1996`` ...).

    Every order of :data:`NUMERIC_ORDERS` with each of :data:`NUMERIC_SEPARATORS`, and every
    order of :data:`NAMED_ORDERS` with each of :data:`NAMED_SEPARATORS`; empty when ``value``
    holds no date (see :func:`parse_date`).
    """
    parts = parse_date(value)
    if parts is None:
        return frozenset()
    return frozenset(_forms(parts, NUMERIC_SEPARATORS, NAMED_SEPARATORS))


@functools.lru_cache(maxsize=4096)
def date_spellings(value: str) -> frozenset[str]:
    """Normalised spellings of a date (``19960717``, ``07171996``, ``17JUL1996`` ...).

    The :func:`date_variants` forms as :func:`normalise` writes them, without the ones shorter
    than :data:`MIN_SPELLING` characters.
    """
    parts = parse_date(value)
    if parts is None:
        return frozenset()
    return frozenset(f.upper() for f in _forms(parts, ("",), ("",)) if len(f) >= MIN_SPELLING)


# Letters that do not decompose to a base letter under NFKD, and how a clerk types them.
TRANSLITERATIONS: dict[str, str] = {
    "ß": "ss",
    "ẞ": "ss",
    "æ": "ae",
    "Æ": "ae",
    "œ": "oe",
    "Œ": "oe",
    "ø": "o",
    "Ø": "o",
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "þ": "th",
    "Þ": "th",
    "ı": "i",
    "ħ": "h",
    "Ħ": "h",
    "ŧ": "t",
    "Ŧ": "t",
    "ŀ": "l",
    "Ŀ": "l",
    "ĸ": "k",
    "ŋ": "ng",
    "Ŋ": "ng",
    "ſ": "s",
}
# The other common way to type a letter (German umlauts, Nordic letters): ü -> ue, ø -> oe.
ALTERNATE_SPELLINGS: dict[str, str] = {
    "ä": "ae",
    "ö": "oe",
    "ü": "ue",
    "ø": "oe",
    "å": "aa",
    "æ": "ae",
}
_DIGRAPHS = re.compile("ae|oe|ue")
_DIGRAPH_LETTER = {"ae": "a", "oe": "o", "ue": "u"}
# a digraph-collapsed form shorter than this (``Doe`` -> ``do``) is too common to look for
MIN_COLLAPSED = 4


def _match_fold(ch: str) -> str:
    """One character in the matching form: lower-case letters and digits, else a space."""
    if ch in TRANSLITERATIONS:
        return TRANSLITERATIONS[ch]
    out: list[str] = []
    for base in unicodedata.normalize("NFKD", ch):
        if unicodedata.combining(base):
            continue
        for low in base.casefold():
            if unicodedata.combining(low):
                continue
            low = TRANSLITERATIONS.get(low, low)
            out.append(low if low.isalnum() else " ")
    return "".join(out)


_ASCII_MATCH = str.maketrans(
    {chr(c): (chr(c).lower() if chr(c).isalnum() else " ") for c in range(128)}
)
_MATCH_FOLDS = _Folds(_match_fold, {})


def fold_text(text: str) -> str:
    """``text`` in the matching form: folded and transliterated, words joined by one space.

    Lower case without accents (``Jürgen`` -> ``jurgen``), letters without a decomposition
    transliterated (:data:`TRANSLITERATIONS`: ``ł`` -> ``l``, ``ß`` -> ``ss``, ``ø`` -> ``o``),
    every other character that is not a letter or digit (punctuation, ``^``, line breaks) read
    as a space, and runs of spaces collapsed, without leading or trailing space.  Not one
    character for one: :func:`fold_text_offsets` maps positions back to ``text``.
    """
    table = _ASCII_MATCH if text.isascii() else _MATCH_FOLDS
    return " ".join(text.translate(table).split())


_WORDS = re.compile(r"[^ ]+")


def fold_text_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """:func:`fold_text` and, for each of its characters, where it starts and ends in ``text``.

    ``folded[a:b]`` was written from ``text[starts[a]:ends[b - 1]]``.
    """
    raw = text.translate(_ASCII_MATCH if text.isascii() else _MATCH_FOLDS)
    if len(raw) != len(text):  # a character became several (ß -> ss): map them one by one
        return _offsets_by_character(text)
    starts: list[int] = []
    for word in _WORDS.finditer(raw):  # one character for one: only the spaces collapse
        if starts:
            starts.append(starts[-1] + 1)  # the first space after the previous word
        starts.extend(range(word.start(), word.end()))
    return " ".join(raw.split()), starts, [index + 1 for index in starts]


def _offsets_by_character(text: str) -> tuple[str, list[int], list[int]]:
    """:func:`fold_text_offsets` for a text in which some character folds to several."""
    chars: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for index, ch in enumerate(text):
        piece = ch.lower() if ch.isascii() and ch.isalnum() else _MATCH_FOLDS[ord(ch)]
        for out in piece:
            if out == " " and (not chars or chars[-1] == " "):
                continue
            chars.append(out)
            starts.append(index)
            ends.append(index + 1)
    if chars and chars[-1] == " ":
        del chars[-1], starts[-1], ends[-1]
    return "".join(chars), starts, ends


def _alternate(text: str) -> str:
    lowered = text.lower()
    return "".join(ALTERNATE_SPELLINGS.get(ch, ch) for ch in lowered)


@functools.lru_cache(maxsize=65536)
def spelling_forms(value: str) -> frozenset[str]:
    """The matching forms (:func:`fold_text`) in which ``value`` may be typed in free text.

    The folded value itself; with umlauts or Nordic letters also their other spelling
    (``Jürgen`` -> ``juergen``, ``Søren`` -> ``soeren``); with ``ae``/``oe``/``ue`` also the
    form without the ``e`` (``Mueller`` -> ``muller``, which is how ``Müller`` folds) when it
    keeps at least :data:`MIN_COLLAPSED` characters; with punctuation inside a word also the
    word closed up (``O'Brien`` -> ``obrien``).  Empty forms are left out.
    """
    forms = {fold_text(value), fold_text(_alternate(value))}
    forms |= {" ".join(_collapse(word) for word in form.split()) for form in forms}
    if _INNER_PUNCTUATION.search(value):
        forms.add(fold_text(_INNER_PUNCTUATION.sub("", value)))
    return frozenset(f for f in forms if f)


_INNER_PUNCTUATION = re.compile(r"(?<=\w)[-'’.](?=\w)")


def _collapse(word: str) -> str:
    """``word`` with ``ae``/``oe``/``ue`` read as ``a``/``o``/``u``, unless it gets too short."""
    collapsed = _DIGRAPHS.sub(lambda m: _DIGRAPH_LETTER[m.group()], word)
    return collapsed if len(collapsed) >= MIN_COLLAPSED else word
