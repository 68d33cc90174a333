"""Inbound triage: the study's reading priority (``stat`` / ``urgent`` / ``routine``) and why.

Evidence comes from the order's clinical history (``clinical_history_of`` an ORM^O01 / OMI^O23
carried by the event), the study description, the event's priority and model findings; rules are
``triage:`` config (:class:`~dxai.configs.schema.triage.TriageConfig`, see its module doc for the
semantics).  Concepts are detected negation-aware (:mod:`dxai.actors.inbound.negation`): "no acute
hemorrhage" raises nothing, "rule out hemorrhage" gives a STAT rule's ``possible_priority``
(``urgent`` by default), "history of stroke" nothing.

Reasons are PHI-free: a rule name, the concept (or keyword, or finding code and score) and where
it was found ("clinical history", "study description"), never the text itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import hl7

from dxai.actors.inbound.findings import Finding, PriorityLevel, TaskReport, report_of
from dxai.actors.inbound.negation import ConceptHit, detect_concepts, unescape_hl7
from dxai.actors.inbound.study import StudyView
from dxai.configs.schema.triage import TriageConfig, TriageRule, priority_rank

TASK = "triage"
Source = Literal["clinical_history", "study_description", "event", "model", "study"]
_SOURCE_WORDS = {"clinical_history": "clinical history", "study_description": "study description"}
#: where an order carries clinical text: (segment, field, coded element)
_HL7_TEXT_FIELDS = (("OBR", 13, False), ("OBR", 31, True), ("NTE", 3, False))
_MAX_HL7_CHARS = 1_000_000
_HL7_ERRORS = (KeyError, IndexError, ValueError, TypeError, AttributeError, hl7.ParseException)


@dataclass(frozen=True)
class TriageInput:
    """What triage looks at.  The free-text fields are PHI: kept out of ``repr``."""

    modalities: tuple[str, ...] = ()
    body_part: str = ""
    study_description: str = field(default="", repr=False)
    event_priority: str | None = None
    clinical_history: str = field(default="", repr=False)
    findings: tuple[Finding, ...] = ()

    @classmethod
    def from_study(
        cls,
        study: StudyView,
        *,
        event_priority: str | None = None,
        hl7_message: str | None = None,
        findings: Iterable[Finding] = (),
    ) -> TriageInput:
        """The input for ``study``: modalities, body part and description from its first header,
        clinical history from the event's HL7 order, ``findings`` of the other tasks."""
        header = study.first_header()
        return cls(
            modalities=study.modalities,
            body_part=str(header.get("BodyPartExamined", "") or ""),
            study_description=str(header.get("StudyDescription", "") or ""),
            event_priority=event_priority,
            clinical_history=clinical_history_of(hl7_message),
            findings=tuple(findings),
        )


@dataclass(frozen=True)
class TriageReason:
    """Why a rule matched: its name, the priority it gave and a PHI-free detail."""

    rule: str
    priority: PriorityLevel
    detail: str
    score: float | None = None


@dataclass(frozen=True)
class TriageResult:
    """The study's priority and the matching rules, most urgent first."""

    priority: PriorityLevel
    reasons: tuple[TriageReason, ...] = ()

    def headline(self) -> str:
        """``STAT: rule acute_hemorrhage (clinical history: hemorrhage)``, or no rule matched."""
        level = self.priority.upper()
        top = [r for r in self.reasons if r.priority == self.priority]
        if not top:
            return f"{level}: no rule matched"
        more = f" (+{len(top) - 1} more)" if len(top) > 1 else ""
        return f"{level}: rule {top[0].rule} ({top[0].detail}){more}"

    def report(self) -> TaskReport:
        """The ``triage`` report: ``triage.priority`` and one ``triage.rule`` per matched rule."""
        findings = [Finding("triage.priority", "info", self.headline(), TASK)]
        findings.extend(
            Finding(
                "triage.rule",
                "info",
                f"rule {r.rule}: {r.priority.upper()} ({r.detail})",
                TASK,
                score=r.score,
            )
            for r in self.reasons
        )
        return report_of(TASK, findings, f"priority {self.priority}", rules=len(self.reasons))


def triage(inp: TriageInput, config: TriageConfig) -> TriageResult:
    """The priority of the study ``inp`` describes under ``config``'s rules (pure CPU work)."""
    hits = _concept_hits(inp, config)
    reasons = [r for rule in config.rules if (r := _match(rule, inp, hits)) is not None]
    reasons.sort(key=lambda r: priority_rank(r.priority))
    priority: PriorityLevel = reasons[0].priority if reasons else config.default_priority
    return TriageResult(priority, tuple(reasons))


def _concept_hits(inp: TriageInput, config: TriageConfig) -> dict[str, tuple[ConceptHit, ...]]:
    concepts = config.concept_keywords()
    texts = {"clinical_history": inp.clinical_history, "study_description": inp.study_description}
    return {
        source: detect_concepts(text, concepts, max_chars=config.max_text_chars)
        for source, text in texts.items()
    }


def _in_scope(rule: TriageRule, inp: TriageInput) -> bool:
    when = rule.when
    modalities = {m.strip().upper() for m in inp.modalities}
    if when.modalities and not modalities & set(when.modalities):
        return False
    if when.body_parts and inp.body_part.strip().upper() not in when.body_parts:
        return False
    priority = (inp.event_priority or "").strip().lower()
    return not (when.event_priorities and priority not in when.event_priorities)


def _match(
    rule: TriageRule, inp: TriageInput, hits: dict[str, tuple[ConceptHit, ...]]
) -> TriageReason | None:
    """The reason ``rule`` matches ``inp``, or None."""
    if not _in_scope(rule, inp):
        return None
    if not rule.when.has_evidence:
        return TriageReason(rule.name, rule.priority, _scope_detail(rule, inp))
    present, possible, score = _evidence(rule, inp, hits)
    if present:
        return TriageReason(rule.name, rule.priority, "; ".join(present), score)
    if possible and rule.possible_priority is not None:
        return TriageReason(rule.name, rule.possible_priority, "; ".join(possible))
    return None


def _evidence(
    rule: TriageRule, inp: TriageInput, hits: dict[str, tuple[ConceptHit, ...]]
) -> tuple[list[str], list[str], float | None]:
    """What supports ``rule``: asserted details, rule-out details, the best model score."""
    present: list[str] = []
    possible: list[str] = []
    for source, source_hits in hits.items():
        where = _SOURCE_WORDS[source]
        for concept in rule.when.concepts:
            states = {h.assertion for h in source_hits if h.concept == concept}
            if "present" in states:
                present.append(f"{where}: {concept}")
            elif "possible" in states:
                possible.append(f"rule-out in {where}: {concept}")
    present.extend(
        f"study description keyword: {k}"
        for k in rule.when.description_keywords
        if has_phrase(inp.study_description, k)
    )
    scores = list(_model_evidence(rule, inp.findings))
    present.extend(f"model finding {code} score {s:.2f} >= {m:.2f}" for code, s, m in scores)
    best = max((s for _, s, _ in scores), default=None)
    return present, possible, best


def _model_evidence(
    rule: TriageRule, findings: Iterable[Finding]
) -> Iterator[tuple[str, float, float]]:
    """(code, score, threshold) of each finding that meets one of the rule's conditions."""
    for condition in rule.when.model_findings:
        matching = [f.score for f in findings if f.code == condition.code and f.score is not None]
        best = max(matching, default=None)
        if best is not None and best >= condition.min_score:
            yield condition.code, best, condition.min_score


def has_phrase(text: str, phrase: str) -> bool:
    """True when ``phrase`` occurs in ``text`` as whole words (any case, any spacing)."""
    words = r"\s+".join(re.escape(w) for w in phrase.split())
    return re.search(rf"(?<!\w){words}(?!\w)", text, flags=re.IGNORECASE) is not None


def _scope_detail(rule: TriageRule, inp: TriageInput) -> str:
    parts = []
    if rule.when.event_priorities:
        parts.append(f"event priority {(inp.event_priority or '').strip().lower()}")
    if rule.when.modalities:
        found = sorted({m.upper() for m in inp.modalities} & set(rule.when.modalities))
        parts.append(f"modality {','.join(found)}")
    if rule.when.body_parts:
        parts.append(f"body part {inp.body_part.strip().upper()}")
    return "; ".join(parts)


def clinical_history_of(hl7_message: str | None) -> str:
    """The clinical text of an HL7 order (ORM^O01, OMI^O23): OBR-13 relevant clinical info,
    OBR-31 reason for study (the text of each coded entry), NTE-3 comments; one line each,
    HL7 escapes decoded.  Empty when there is no message or it cannot be parsed (never raises).
    """
    message = _parse(hl7_message)
    if message is None:
        return ""
    try:
        lines = list(_clinical_lines(message))
    except _HL7_ERRORS:
        return ""
    return "\n".join(dict.fromkeys(line for line in lines if line))


def _parse(text: str | None) -> Any:
    if not text or not isinstance(text, str):
        return None
    raw = text[:_MAX_HL7_CHARS].replace("\r\n", "\r").replace("\n", "\r").strip("\r")
    if not raw.startswith("MSH"):
        return None
    try:
        return hl7.parse(raw)
    except _HL7_ERRORS:
        return None


def _clinical_lines(message: Any) -> Iterator[str]:
    separators = str(message.separators)
    rep, comp = (separators[2], separators[3]) if len(separators) > 3 else ("~", "^")
    for segment in message:
        name = str(segment[0]) if len(segment) else ""
        for seg_name, index, coded in _HL7_TEXT_FIELDS:
            if name != seg_name or len(segment) <= index:
                continue
            for repetition in str(segment[index]).split(rep):
                parts = repetition.split(comp)
                text = _coded_text(parts) if coded else " ".join(parts)
                yield unescape_hl7(text).strip()


def _coded_text(parts: list[str]) -> str:
    """A CE/CWE entry's text (component 2, else the alternate text 5, else the code 1)."""
    for index in (1, 4, 0):
        if len(parts) > index and parts[index].strip():
            return parts[index]
    return ""
