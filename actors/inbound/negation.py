"""Negation-aware concept detection over clinical text (NegEx, through ``negspacy``).

The pipeline: ``spacy.blank("en")`` (no model to download), a ``sentencizer``, an
``entity_ruler`` with one case-insensitive (``LOWER``) token pattern per keyword phrase of each
concept, then three NegEx passes (``negspacy``'s ``negex`` component) over those entities:

- ``negex`` with the ``en_clinical`` termset, *less* its rule-out cues: "no", "without",
  "negative for", "no evidence of", "ruled out", "free of", "hemorrhage was ruled out" ...
  mark a mention **negated**;
- a rule-out pass: "rule out", "r/o", "evaluate for", "assess for", "query", "?", "cannot
  exclude", "versus" mark it **possible** (the study is ordered to answer the question);
- a history pass: "history of", "h/o", "prior", "previous", "status post" mark it
  **historical**.

Hedged positive wording ("suspected", "concern for", "possible") counts as asserted: over-triage
is the safe error.  A scope ends at a sentence end (also ``;``, HL7 ``\\.br\\``, ``~`` and line
breaks) or at a termination term ("but", "however", "presents with", ...).  Within a clause NegEx
scopes run on: "no trauma, acute bleed" negates the bleed (a comma does not end a scope).

A pipeline is built once per concept set and cached; spaCy pipelines are not documented as
thread-safe, so every call holds a lock.  Texts never leave this module (no logging).
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import spacy
from negspacy.negation import Negex  # noqa: F401 - registers the "negex" factory
from negspacy.termsets import termset
from spacy.language import Language
from spacy.pipeline import Sentencizer

#: the longest text analysed (characters); the rest is ignored
MAX_TEXT_CHARS = 20_000
_CACHE_SIZE = 8
_POSSIBLE = "dxai_possible"
_HISTORICAL = "dxai_historical"

#: en_clinical negation cues that ask a question rather than deny: moved to the rule-out pass
_RULE_OUT_CUES = (
    "rule out", "rules out", "rule him out", "rule her out", "rule patient out",
    "rule the patient out", "r/o", "ro", "evaluate for", "versus",
)  # fmt: skip
_POSSIBLE_PRECEDING = (
    *_RULE_OUT_CUES, "eval for", "evaluation for", "assess for", "assessment for", "query",
    "question of", "questionable", "? of", "cannot exclude", "can not exclude", "cannot rule out",
    "can not rule out", "can't rule out", "can't exclude", "not excluded", "vs", "vs.",
    "to exclude", "exclude",
)  # fmt: skip
_POSSIBLE_FOLLOWING = ("?", "not excluded", "cannot be excluded", "not ruled out")
_HISTORICAL_PRECEDING = (
    "history of", "hx of", "h/o", "past history of", "past medical history of", "prior",
    "previous", "previously", "remote", "status post", "s/p", "known history of",
)  # fmt: skip
_EXTRA_NEGATION_PSEUDO = (
    "cannot exclude", "can not exclude", "cannot rule out", "can not rule out",
    "can't rule out", "can't exclude", "cannot be excluded", "not excluded",
)  # fmt: skip
_EXTRA_NEGATION_FOLLOWING = (
    "ruled out", "is excluded", "was excluded", "has been excluded", "has been ruled out",
    "is not seen", "was not seen", "is not identified", "is absent",
)  # fmt: skip
_EXTRA_TERMINATION = (
    "presents with", "presenting with", "presented with", "now with", "complains of", "c/o",
    "positive for", "concerning for", "concern for", "suspicious for",
)  # fmt: skip

_HL7_ESCAPES = {"F": "|", "S": "^", "T": "&", "R": "~", "E": "\\"}
_ESCAPE = re.compile(r"\\([^\\\r\n]{0,16})\\")
_LINE_BREAK = re.compile(r"\\\.br\\", re.IGNORECASE)
_BREAKS = re.compile(r"(?:\s*[~\r\n]\s*)+")
_QUERY = re.compile(r"\?(?=[A-Za-z])")
_SPACES = re.compile(r"[ \t\f\v]+")


@dataclass(frozen=True)
class ConceptHit:
    """One mention of a concept: where in the normalised text (character offsets) and how.

    ``negated``: denied ("no hemorrhage"); ``possible``: questioned ("rule out hemorrhage");
    ``historical``: in the past ("history of stroke").  None set: asserted.
    """

    concept: str
    negated: bool
    possible: bool = False
    historical: bool = False
    start: int = 0
    end: int = 0

    @property
    def hypothetical(self) -> bool:
        """Alias of ``possible``: the mention is a question (rule-out), not a statement."""
        return self.possible

    @property
    def asserted(self) -> bool:
        """True when the mention says the concept is present now."""
        return not (self.negated or self.possible or self.historical)

    @property
    def assertion(self) -> str:
        """``negated``, ``possible``, ``historical`` or ``present`` (in that precedence)."""
        if self.negated:
            return "negated"
        if self.possible:
            return "possible"
        return "historical" if self.historical else "present"


def unescape_hl7(text: str) -> str:
    """HL7 v2 escape sequences decoded (``\\F\\`` -> ``|``, ``\\.br\\`` -> a line break,
    ``\\Xhh\\`` -> its characters, other formatting -> a space)."""
    return _ESCAPE.sub(_unescape, text)


def normalise_text(text: str, max_chars: int = MAX_TEXT_CHARS) -> str:
    """Clinical text made plain: HL7 escapes decoded (``\\.br\\``, ``~`` and line breaks end a
    sentence), "?word" read as "query word", runs of spaces collapsed, cut at ``max_chars``."""
    raw = _LINE_BREAK.sub("\n", text[: max_chars * 2])
    sentences = [unescape_hl7(s).strip() for s in _BREAKS.split(raw)]
    joined = " ".join(_end_sentence(s) for s in sentences if s)
    joined = _QUERY.sub("query ", joined)
    return _SPACES.sub(" ", joined).strip()[:max_chars]


def _unescape(match: re.Match[str]) -> str:
    body = match.group(1)
    if body in _HL7_ESCAPES:
        return _HL7_ESCAPES[body]
    if body == ".br":
        return "\n"
    if re.fullmatch(r"X(?:[0-9A-Fa-f]{2})+", body):
        decoded = bytes.fromhex(body[1:]).decode("latin-1")
        return "".join(c if c.isprintable() else " " for c in decoded)
    return " "  # formatting (\H\, \N\, \.sp\, \.in\ ...): no text


def _end_sentence(sentence: str) -> str:
    return sentence if sentence[-1] in ".!?;:" else sentence + "."


def detect_concepts(
    text: str, concepts: Mapping[str, Sequence[str]], *, max_chars: int = MAX_TEXT_CHARS
) -> tuple[ConceptHit, ...]:
    """Every mention in ``text`` of the ``concepts`` (name -> keyword phrases), in text order.

    Case-insensitive whole-token matching; the longest phrase wins where phrases overlap.  Blank
    text or no concepts: no hits.  Offsets refer to :func:`normalise_text` of ``text``.
    """
    plain = normalise_text(text, max_chars)
    if not plain or not concepts:
        return ()
    key = _concept_key(concepts)
    with _LOCK:
        nlp = _pipeline(key)
        doc = nlp(plain)
        return tuple(_hit(ent) for ent in doc.ents)


def _hit(ent: Any) -> ConceptHit:
    return ConceptHit(
        concept=str(ent.label_),
        negated=bool(ent._.negex),
        possible=bool(getattr(ent._, _POSSIBLE)),
        historical=bool(getattr(ent._, _HISTORICAL)),
        start=int(ent.start_char),
        end=int(ent.end_char),
    )


_ConceptKey = tuple[tuple[str, tuple[str, ...]], ...]
_LOCK = threading.Lock()
#: concept set -> [pipeline, texts it has read]; a pipeline is rebuilt after _REBUILD_AFTER texts
#: (spaCy's vocabulary keeps every string it has seen: this bounds the growth)
_PIPELINES: OrderedDict[_ConceptKey, list[Any]] = OrderedDict()
_REBUILD_AFTER = 5_000


def _concept_key(concepts: Mapping[str, Sequence[str]]) -> _ConceptKey:
    return tuple(
        sorted(
            (name, tuple(sorted({p.strip().lower() for p in phrases if p.strip()})))
            for name, phrases in concepts.items()
        )
    )


def _pipeline(key: _ConceptKey) -> Language:
    """The cached pipeline for ``key`` (built on a miss; the caller holds the lock)."""
    entry = _PIPELINES.get(key)
    if entry is None or entry[1] >= _REBUILD_AFTER:
        entry = [build_pipeline(key), 0]
        _PIPELINES[key] = entry
        while len(_PIPELINES) > _CACHE_SIZE:
            _PIPELINES.popitem(last=False)
    _PIPELINES.move_to_end(key)
    entry[1] += 1
    nlp: Language = entry[0]
    return nlp


def build_pipeline(concepts: Sequence[tuple[str, Sequence[str]]]) -> Language:
    """A new pipeline for ``(name, phrases)`` pairs (see the module doc; no download)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer", config={"punct_chars": [*Sentencizer.default_punct_chars, ";"]})
    ruler: Any = nlp.add_pipe("entity_ruler", config={"overwrite_ents": True})
    patterns = [
        {"label": name, "pattern": [{"LOWER": tok.lower_} for tok in nlp.make_doc(phrase)]}
        for name, phrases in concepts
        for phrase in phrases
        if phrase.strip()
    ]
    ruler.add_patterns(patterns)
    for name, terms in _termsets().items():
        nlp.add_pipe("negex", name=name, config={"neg_termset": terms, "extension_name": name})
    return nlp


def _termsets() -> dict[str, dict[str, list[str]]]:
    """The three NegEx passes: name (also the span extension) -> termset."""
    ts = termset("en_clinical")  # type: ignore[no-untyped-call]  # negspacy: no annotations
    clinical: dict[str, list[str]] = ts.get_patterns()  # type: ignore[no-untyped-call]
    termination = [*clinical["termination"], *_EXTRA_TERMINATION]
    negation = {
        "pseudo_negations": [*clinical["pseudo_negations"], *_EXTRA_NEGATION_PSEUDO],
        "preceding_negations": [
            t for t in clinical["preceding_negations"] if t not in _RULE_OUT_CUES
        ],
        "following_negations": [*clinical["following_negations"], *_EXTRA_NEGATION_FOLLOWING],
        "termination": termination,
    }
    possible = {
        "pseudo_negations": [],
        "preceding_negations": list(_POSSIBLE_PRECEDING),
        "following_negations": list(_POSSIBLE_FOLLOWING),
        "termination": termination,
    }
    historical = {
        "pseudo_negations": ["no history of", "no prior", "no previous"],
        "preceding_negations": list(_HISTORICAL_PRECEDING),
        "following_negations": [],
        "termination": termination,
    }
    return {"negex": negation, _POSSIBLE: possible, _HISTORICAL: historical}
