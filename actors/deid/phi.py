"""PHI tokens collected from an input dataset, and the matcher that finds or removes them.

Tokens come only from attributes whose value the profile removes or replaces (never from cleaned
``C`` attributes, whose remaining text is legitimately kept).  To avoid false positives a token is
dropped when it is shorter than 3 characters, a purely numeric string shorter than 5 digits, a
generic word, equal to a value that is legitimately kept (for example a kept ``Modality``), or
contained in a value that de-identification itself wrote (pseudonyms, dummies, shifted dates).
Matching is case- and accent-insensitive (``MÜLLER`` also finds ``Muller``, see
:func:`dxai.configs.phi.fold_case`) and anchored at word boundaries so that the name part ``ANN``
does not match inside ``SCANNER``.  Dates are looked for in every written form of
:func:`dxai.configs.phi.date_variants`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from dxai.configs.phi import date_variants, fold_case

MIN_TOKEN = 3
MIN_NUMERIC_TOKEN = 5
NAME_VRS = frozenset({"PN"})
TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "DT", "AE", "CS", "UR"})
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
GENERIC_WORDS = frozenset(
    {
        "ANON",
        "ANONYMOUS",
        "ANONYMIZED",
        "ANONYMISED",
        "REMOVED",
        "UNKNOWN",
        "NONE",
        "NULL",
        "YES",
        "MALE",
        "FEMALE",
        "OTHER",
        "DXAI",
        "DOCTOR",
        "PATIENT",
        "STUDY",
        "SERIES",
        "IMAGE",
        "TEST",
        "MRS",
        "MISS",
        "PHD",
        "DR.",
        "M.D.",
        "N/A",
        "19000101",
    }
)
_SPLIT_NAME = re.compile(r"[\^=\s,]+")
_ALNUM = re.compile(r"[^\W_]")  # exactly the characters for which str.isalnum() is true


def token_hash(token: str) -> str:
    """A short hash that identifies a token in reports without revealing it."""
    return "h:" + hashlib.sha256(token.casefold().encode("utf-8")).hexdigest()[:12]


def _acceptable(token: str) -> bool:
    if len(token) < MIN_TOKEN:
        return False
    if token.isdigit() and len(token) < MIN_NUMERIC_TOKEN:
        return False
    if not token.isalnum() and _ALNUM.search(token) is None:
        return False
    return token.upper() not in GENERIC_WORDS


def tokens_from_value(value: str, vr: str) -> set[str]:
    """The PHI tokens of one removed/replaced value (names also give their components)."""
    out: set[str] = set()
    for part in value.split("\\"):
        text = part.strip().strip("\x00").strip()
        if not text:
            continue
        if vr in ("DA", "DT"):
            out |= date_variants(text)
        if vr in NAME_VRS:
            parts = _SPLIT_NAME.split(text)
            out.add(" ".join(p for p in parts if p))
            out.update(p.strip(".") for p in parts)
        else:
            out.add(text)
    return {t for t in out if _acceptable(t)}


@dataclass
class PhiCollector:
    """Accumulates PHI tokens, kept values and generated values during one walk."""

    tokens: set[str] = field(default_factory=set)
    kept_values: set[str] = field(default_factory=set)
    generated: list[str] = field(default_factory=list)
    _added: set[tuple[str, str]] = field(default_factory=set)

    def add(self, value: str, vr: str) -> None:
        """Add the tokens of a removed or replaced value (each distinct value is split once)."""
        key = (value, vr)
        if key not in self._added:
            self._added.add(key)
            self.tokens.update(tokens_from_value(value, vr))

    def keep(self, value: str) -> None:
        """Record a legitimately kept value (its tokens are not PHI)."""
        for part in value.split("\\"):
            text = part.strip()
            if text:
                self.kept_values.add(text.casefold())

    def final_tokens(self) -> frozenset[str]:
        """The tokens that survive the false-positive filters.

        A token is dropped when it appears, as whole words, inside a kept coded value (CS or a
        code meaning: standard vocabulary such as ``CT PE CHEST``), or anywhere inside a value
        that de-identification wrote itself.
        """
        generated = "\x00".join(self.generated).casefold()
        candidates = [t for t in self.tokens if t.casefold() not in generated]
        kept = "\x00".join(sorted(self.kept_values))
        in_vocabulary = set(PhiMatcher.for_text(candidates, kept).find(kept)) if kept else set()
        folded_vocabulary = {v.casefold() for v in in_vocabulary}
        return frozenset(t for t in candidates if t.casefold() not in folded_vocabulary)


def _is_word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class PhiMatcher:
    """Case- and accent-insensitive whole-word search for a token set, without regular expressions.

    ``str.find`` on folded text (:func:`dxai.configs.phi.fold_case`, one character for one, so
    positions found index the original text) plus a boundary check is far cheaper than
    compiling a large alternation per instance.  Name separators (``^``, ``=``) count as
    spaces, so the joined name ``DOE JOHN`` also matches ``DOE^JOHN``.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        ordered = sorted(set(tokens), key=lambda t: (-len(t), t))
        self.tokens = tuple(ordered)
        self._folded = tuple((fold_case(t), t.isdigit()) for t in ordered)

    @classmethod
    def for_text(cls, tokens: Iterable[str], haystack: str) -> PhiMatcher:
        """A matcher for only those ``tokens`` that may occur somewhere in ``haystack``.

        One ``in`` test per token over the whole folded haystack (for example all the values of
        an instance joined with NUL) is a necessary condition for a match in any part of it, so
        the parts are then matched with the same results as with every token.
        """
        folded = fold_case(haystack)
        return cls(t for t in set(tokens) if fold_case(t) in folded)

    def _spans(self, text: str) -> list[tuple[int, int]]:
        folded = fold_case(text)  # one character for one: positions index ``text``
        spans = []
        for token, digits in self._folded:
            start = folded.find(token)
            while start >= 0:
                end = start + len(token)
                before = folded[start - 1] if start else ""
                after = folded[end] if end < len(folded) else ""
                check = str.isdigit if digits else _is_word
                if not (before and check(before)) and not (after and check(after)):
                    spans.append((start, end))
                start = folded.find(token, start + 1)
        return spans

    def find(self, text: str) -> list[str]:
        """The distinct matched substrings of ``text`` (empty when clean)."""
        if not self.tokens or not text:
            return []
        return sorted({text[a:b] for a, b in self._spans(text)})

    def scrub(self, text: str) -> str:
        """``text`` with every token removed and the whitespace tidied."""
        if not self.tokens or not text:
            return text
        spans = sorted(self._spans(text))
        if not spans:
            return text
        keep = []
        position = 0
        for start, end in spans:
            if start > position:
                keep.append(text[position:start])
            position = max(position, end)
        keep.append(text[position:])
        return re.sub(r"[ \t]{2,}", " ", "".join(keep)).strip()
