"""PHI tokens collected from an input dataset, and the matcher that finds or removes them.

Tokens come only from attributes whose value the profile removes or replaces (never from cleaned
``C`` attributes, whose remaining text is legitimately kept).  To avoid false positives a token is
dropped when it is shorter than 3 characters (2 for a token in a script written without spaces,
such as ``山田``), a purely numeric string shorter than 5 digits, a generic word, equal to a
value that is legitimately kept (for example a kept ``Modality``), or contained in a value that
de-identification itself wrote (pseudonyms, dummies, shifted dates).  A person name gives its
words, its hyphenated parts, and family and given name in both orders; an address also gives its
comma-separated parts.

Matching works on the shared matching form (:func:`dxai.configs.phi.fold_text`): case, accents,
transliteration (``Łukaszewicz`` finds ``Lukaszewicz``, ``Müller`` finds ``Mueller``) and
punctuation are folded, and every typed spelling of :func:`dxai.configs.phi.spelling_forms` is
looked for.  Matches are anchored at word boundaries (so the name part ``ANN`` does not match
inside ``SCANNER``) except next to characters of scripts written without spaces.  Dates are
looked for in every written form of :func:`dxai.configs.phi.date_variants`.  With
``patterns=True`` the matcher also finds PHI that the header does not carry
(:func:`dxai.configs.phi_patterns.pattern_spans`).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from dxai.configs.phi import date_variants, fold_text, fold_text_offsets, spelling_forms
from dxai.configs.phi_patterns import pattern_spans

MIN_TOKEN = 3
MIN_UNSPACED_TOKEN = 2  # ideographs: two carry a name (山田)
UNSPACED_SCRIPTS = 0x2E80  # CJK radicals and above: scripts written without spaces
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
_SPLIT_WORDS = re.compile(r"[\s,]+")
_ADDRESS_PARTS = re.compile(r"\s*[,;\r\n]+\s*")
_ALNUM = re.compile(r"[^\W_]")  # exactly the characters for which str.isalnum() is true
MAX_SCRUB_PASSES = 3  # removing a span can join two pieces into a new match: scrub again
# Attributes holding an address: their comma-separated parts are tokens too.
ADDRESS_TAGS = frozenset({0x00101040, 0x00080081, 0x00080092, 0x00401102, 0x00102152})

Span = tuple[int, int, str]  # start, end, kind ("phi" for a token, else a pattern kind)


def token_hash(token: str) -> str:
    """A short hash that identifies a token in reports without revealing it."""
    return "h:" + hashlib.sha256(token.casefold().encode("utf-8")).hexdigest()[:12]


def unspaced(ch: str) -> bool:
    """True for a character of a script written without spaces between words (CJK, kana)."""
    return ord(ch) >= UNSPACED_SCRIPTS


def _acceptable(token: str) -> bool:
    if len(token) < MIN_TOKEN and not (
        len(token) >= MIN_UNSPACED_TOKEN and any(unspaced(ch) for ch in token)
    ):
        return False
    if token.isdigit() and len(token) < MIN_NUMERIC_TOKEN:
        return False
    if not token.isalnum() and _ALNUM.search(token) is None:
        return False
    return token.upper() not in GENERIC_WORDS


def _acceptable_form(form: str) -> bool:
    """A folded spelling is looked for only when it is still as specific as a token must be."""
    compact = form.replace(" ", "")
    if compact.isdigit():
        return len(compact) >= MIN_NUMERIC_TOKEN
    return len(compact) >= MIN_TOKEN or (
        len(compact) >= MIN_UNSPACED_TOKEN and any(unspaced(ch) for ch in compact)
    )


@functools.lru_cache(maxsize=65536)
def search_forms(token: str) -> tuple[str, ...]:
    """The spellings of ``token`` that are looked for (specific enough to be tokens)."""
    return tuple(f for f in spelling_forms(token) if _acceptable_form(f))


def _group_names(group: str) -> set[str]:
    """The tokens of one component group of a person name (``FAMILY^GIVEN^MIDDLE^...``)."""
    parts = [p.strip() for p in group.split("^")]
    words = [w for p in parts for w in _SPLIT_WORDS.split(p) if w]
    out = {w.strip(".") for w in words}
    out.update(piece for w in words if "-" in w for piece in w.split("-"))
    named = [p for p in parts if p]
    if named:
        out.add(" ".join(named))
    family, given = parts[0], parts[1] if len(parts) > 1 else ""
    if family and given:
        out |= {f"{family} {given}", f"{given} {family}"}
        if any(unspaced(ch) for ch in family + given):
            out |= {family + given, given + family}
    return out


def name_tokens(value: str) -> set[str]:
    """Tokens of a person name: words, hyphen parts, family and given name in both orders.

    Every component group (alphabetic, ideographic, phonetic, split by ``=``) counts, and the
    joined name of all groups is kept as one token as well.
    """
    out: set[str] = set()
    for group in value.split("="):
        out |= _group_names(group)
    joined = " ".join(w for w in re.split(r"[\^=\s,]+", value) if w)
    if joined:
        out.add(joined)
    return out


def tokens_from_value(value: str, vr: str, tag: int | None = None) -> set[str]:
    """The PHI tokens of one removed/replaced value (names and addresses also give parts)."""
    out: set[str] = set()
    for part in value.split("\\"):
        text = part.strip().strip("\x00").strip()
        if not text:
            continue
        if vr in ("DA", "DT"):
            out |= date_variants(text)
        if vr in NAME_VRS:
            out |= name_tokens(text)
            continue
        out.add(text)
        if tag in ADDRESS_TAGS:
            out.update(p for p in _ADDRESS_PARTS.split(text) if p)
    return {t for t in out if _acceptable(t)}


@dataclass
class PhiCollector:
    """Accumulates PHI tokens, kept values and generated values during one walk."""

    tokens: set[str] = field(default_factory=set)
    kept_values: set[str] = field(default_factory=set)
    generated: list[str] = field(default_factory=list)
    _added: set[tuple[str, str, int | None]] = field(default_factory=set)

    def add(self, value: str, vr: str, tag: int | None = None) -> None:
        """Add the tokens of a removed or replaced value (each distinct value is split once)."""
        key = (value, vr, tag if tag in ADDRESS_TAGS else None)
        if key not in self._added:
            self._added.add(key)
            self.tokens.update(tokens_from_value(value, vr, key[2]))

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
        if not kept:
            return frozenset(candidates)
        in_vocabulary = PhiMatcher.for_text(candidates, kept).matched_tokens(kept)
        return frozenset(t for t in candidates if t not in in_vocabulary)


def _edge_ok(neighbour: str, edge: str) -> bool:
    return neighbour == " " or unspaced(neighbour) or unspaced(edge)


def _bounded(folded: str, start: int, end: int, digits: bool) -> bool:
    """True when ``folded[start:end]`` stands as whole words (whole numbers for digits)."""
    before = folded[start - 1] if start else " "
    after = folded[end] if end < len(folded) else " "
    if digits:
        return not before.isdigit() and not after.isdigit()
    return _edge_ok(before, folded[start]) and _edge_ok(after, folded[end - 1])


def _merge(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


class PhiMatcher:
    """Whole-word search of a token set in the shared matching form, without regular expressions.

    Each token is looked for in every spelling of :func:`dxai.configs.phi.spelling_forms`, with
    ``str.find`` on the folded text (:func:`dxai.configs.phi.fold_text`) plus a boundary check,
    far cheaper than compiling a large alternation per instance.  Positions map back to the
    original text (:func:`dxai.configs.phi.fold_text_offsets`), computed only for a text in
    which some spelling occurs.  With ``patterns=True`` the pattern spans of
    :func:`dxai.configs.phi_patterns.pattern_spans` count as matches too.
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        ordered = sorted(set(tokens), key=lambda t: (-len(t), t))
        self.tokens = tuple(ordered)
        forms: dict[str, list[str]] = {}
        for token in ordered:
            for form in search_forms(token):
                forms.setdefault(form, []).append(token)
        self._forms = tuple(
            (form, tuple(tokens), form.replace(" ", "").isdigit()) for form, tokens in forms.items()
        )

    @classmethod
    def for_text(cls, tokens: Iterable[str], haystack: str) -> PhiMatcher:
        """A matcher for only those ``tokens`` that may occur somewhere in ``haystack``.

        One ``in`` test per spelling over the whole folded haystack (for example all the values
        of an instance joined with NUL) is a necessary condition for a match in any part of it,
        so the parts are then matched with the same results as with every token.
        """
        folded = fold_text(haystack)
        present = []
        for token in tokens:
            for form in search_forms(token):
                if form in folded:
                    present.append(token)
                    break
        return cls(present)

    def _token_spans(self, text: str) -> Iterator[tuple[int, int, tuple[str, ...]]]:
        """(start, end, tokens) in ``text`` for every whole-word match of a spelling."""
        quick = fold_text(text)
        present = [entry for entry in self._forms if entry[0] in quick]
        if not present:
            return
        folded, starts, ends = fold_text_offsets(text)
        for form, tokens, digits in present:
            at = folded.find(form)
            while at >= 0:
                end = at + len(form)
                if _bounded(folded, at, end, digits):
                    yield starts[at], ends[end - 1], tokens
                at = folded.find(form, at + 1)

    def spans(self, text: str, *, patterns: bool = False) -> list[Span]:
        """Every match in ``text``: tokens (kind ``phi``) and, with ``patterns``, pattern kinds."""
        if not text:
            return []
        found: list[Span] = []
        if self.tokens:
            found = [(a, b, "phi") for a, b, _ in self._token_spans(text)]
        if patterns:
            found.extend(pattern_spans(text))
        return found

    def matched_tokens(self, text: str) -> set[str]:
        """The tokens (as given) that occur in ``text``."""
        if not self.tokens or not text:
            return set()
        return {token for _, _, tokens in self._token_spans(text) for token in tokens}

    def find(self, text: str, *, patterns: bool = False) -> list[str]:
        """The distinct matched substrings of ``text`` (empty when clean)."""
        return sorted({text[a:b] for a, b, _ in self.spans(text, patterns=patterns)})

    def _scrub_once(self, text: str, patterns: bool) -> str:
        spans = _merge((a, b) for a, b, _ in self.spans(text, patterns=patterns))
        if not spans:
            return text
        keep = []
        position = 0
        for start, end in spans:
            keep.append(text[position:start])
            position = end
        keep.append(text[position:])
        return re.sub(r"[ \t]{2,}", " ", "".join(keep)).strip()

    def scrub(self, text: str, *, patterns: bool = False) -> str:
        """``text`` with every match removed and the whitespace tidied.

        Removing a span can bring two pieces together into a new match, so the text is scrubbed
        again until nothing changes (at most :data:`MAX_SCRUB_PASSES` times).
        """
        if not text or not (self.tokens or patterns):
            return text
        for _ in range(MAX_SCRUB_PASSES):
            cleaned = self._scrub_once(text, patterns)
            if cleaned == text:
                break
            text = cleaned
        return text
