"""The ``triage:``, ``routing:`` and ``summary:`` sections of the inbound workflow.

``triage``: named clinical ``concepts`` (keyword phrases, matched case-insensitively with
negation, rule-out and history detected) and ordered ``rules``.  A rule has *scope* conditions
(``modalities``, ``body_parts``, ``event_priorities``: each a list of allowed values, empty: any,
all must hold) and *evidence* conditions (``concepts`` asserted in the clinical history or the
study description, ``description_keywords``, ``model_findings`` with a minimum score): when a rule
lists evidence, at least one piece must be found.  Every matching rule gives its ``priority``; the
study gets the highest (``stat`` > ``urgent`` > ``routine``), else ``default_priority``.  A concept
only *questioned* ("rule out hemorrhage", "r/o", "evaluate for", "?bleed") gives the rule's
``possible_priority`` instead (by default one step lower: a rule-out of a STAT condition is
``urgent``); a negated ("no hemorrhage") or historical ("history of stroke") concept gives nothing.

``routing``: the ``destinations`` a study may be suggested for with their capabilities, and
ordered ``rules`` (study type, referrer, triage priority) naming destinations or required
subspecialties.  Referrers are matched as hashes, like ``policy`` does.

``summary``: the plain-language transfer summary for the referrer (a Jinja template).
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, StringConstraints, field_validator, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.policy import check_physician_names, physician_digests
from dxai.configs.schema.routes import RouteName

TriagePriority = Literal["stat", "urgent", "routine"]
EventPriority = Literal["stat", "urgent", "routine", "low"]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
FindingCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
_CODE = re.compile(r"^[A-Z0-9_ ]{1,16}$")

#: priorities from the most to the least urgent
PRIORITY_ORDER: tuple[TriagePriority, ...] = ("stat", "urgent", "routine")


def priority_rank(priority: str) -> int:
    """0 for ``stat``, 1 for ``urgent``, 2 for ``routine`` (lower is more urgent)."""
    return PRIORITY_ORDER.index(priority) if priority in PRIORITY_ORDER else len(PRIORITY_ORDER)


def _upper_codes(value: tuple[str, ...], what: str) -> tuple[str, ...]:
    if any(not _CODE.match(v) for v in value):
        raise ValueError(f"{what} are upper-case DICOM code strings (CT, HEAD, ...)")
    return value


# --- triage -------------------------------------------------------------------------------


class TriageConcept(Section):
    """A clinical concept: its name and the keyword phrases that mention it (any case)."""

    name: Name
    keywords: tuple[Phrase, ...] = Field(min_length=1)


class ModelFindingCondition(Section):
    """A model finding (``Finding.code``) whose ``score`` is at least ``min_score``."""

    code: FindingCode
    min_score: float = Field(default=0.5, ge=0.0, le=1.0)


class TriageMatch(Section):
    """A rule's conditions (see the module doc: scope all hold, evidence any one found)."""

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    event_priorities: tuple[EventPriority, ...] = ()
    concepts: tuple[Name, ...] = ()
    description_keywords: tuple[Phrase, ...] = ()
    model_findings: tuple[ModelFindingCondition, ...] = ()

    @field_validator("modalities", "body_parts")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _upper_codes(value, "modalities and body parts")

    @property
    def has_evidence(self) -> bool:
        """True when the rule needs evidence (a concept, a keyword or a model finding)."""
        return bool(self.concepts or self.description_keywords or self.model_findings)

    @property
    def is_empty(self) -> bool:
        """True when no condition is set (such a rule would match every study)."""
        scope = self.modalities or self.body_parts or self.event_priorities
        return not scope and not self.has_evidence


class TriageRule(Section):
    """One rule: its name, conditions and the priority it gives.

    ``possible_priority``: what a concept that is only questioned (rule-out) gives; None: nothing.
    """

    name: Name
    when: TriageMatch
    priority: TriagePriority
    possible_priority: TriagePriority | None = "urgent"

    @model_validator(mode="after")
    def _not_empty(self) -> TriageRule:
        if self.when.is_empty:
            raise ValueError(f"triage rule {self.name!r} has no condition")
        return self


def _concept(name: str, *keywords: str) -> TriageConcept:
    return TriageConcept(name=name, keywords=keywords)


def _rule(name: str, priority: TriagePriority, concept: str, model: str, *keys: str) -> TriageRule:
    possible: TriagePriority = "urgent" if priority == "stat" else "routine"
    when = TriageMatch(
        concepts=(concept,),
        description_keywords=keys,
        model_findings=(ModelFindingCondition(code=model, min_score=0.5),),
    )
    return TriageRule(name=name, when=when, priority=priority, possible_priority=possible)


# fmt: off
DEFAULT_CONCEPTS: tuple[TriageConcept, ...] = (
    _concept(
        "hemorrhage", "hemorrhage", "haemorrhage", "hemorrhagic", "haemorrhagic", "bleed",
        "bleeding", "ich", "sah", "sdh", "edh", "subdural hematoma", "epidural hematoma",
        "intracranial hematoma", "subdural haematoma", "epidural haematoma",
    ),
    _concept(
        "stroke", "stroke", "cva", "cerebrovascular accident", "code stroke", "stroke alert",
        "acute infarct", "cerebral infarct", "cerebral infarction", "brain attack",
    ),
    _concept(
        "large_vessel_occlusion", "large vessel occlusion", "lvo", "mca occlusion",
        "ica occlusion", "basilar occlusion", "m1 occlusion", "carotid occlusion",
    ),
    _concept("pneumothorax", "pneumothorax", "ptx", "tension pneumothorax"),
    _concept(
        "aortic_dissection", "aortic dissection", "dissection of the aorta", "type a dissection",
        "type b dissection", "dissecting aneurysm", "aortic rupture",
    ),
    _concept(
        "pulmonary_embolism", "pulmonary embolism", "pulmonary embolus", "pulmonary emboli",
        "pe", "saddle embolus",
    ),
    _concept("fracture", "fracture", "fractures", "fractured", "fx", "broken bone"),
    _concept("appendicitis", "appendicitis", "appendiceal abscess"),
    _concept(
        "obstruction", "obstruction", "bowel obstruction", "small bowel obstruction", "sbo",
        "ileus", "volvulus",
    ),
)
# fmt: on

DEFAULT_RULES: tuple[TriageRule, ...] = (
    _rule("acute_hemorrhage", "stat", "hemorrhage", "ai.hemorrhage"),
    _rule("stroke", "stat", "stroke", "ai.stroke", "stroke protocol", "code stroke"),
    _rule("large_vessel_occlusion", "stat", "large_vessel_occlusion", "ai.lvo"),
    _rule("pneumothorax", "stat", "pneumothorax", "ai.pneumothorax"),
    _rule("aortic_dissection", "stat", "aortic_dissection", "ai.aortic_dissection"),
    _rule("pulmonary_embolism", "stat", "pulmonary_embolism", "ai.pulmonary_embolism"),
    _rule("fracture", "urgent", "fracture", "ai.fracture"),
    _rule("appendicitis", "urgent", "appendicitis", "ai.appendicitis"),
    _rule("obstruction", "urgent", "obstruction", "ai.obstruction"),
    TriageRule(name="event_stat", when=TriageMatch(event_priorities=("stat",)), priority="stat"),
    TriageRule(
        name="event_urgent", when=TriageMatch(event_priorities=("urgent",)), priority="urgent"
    ),
)


class TriageConfig(Section):
    """Concepts and ordered rules; the highest priority of the matching rules wins."""

    concepts: tuple[TriageConcept, ...] = DEFAULT_CONCEPTS
    rules: tuple[TriageRule, ...] = DEFAULT_RULES
    default_priority: TriagePriority = "routine"
    max_text_chars: int = Field(default=20_000, ge=100, le=1_000_000)

    @model_validator(mode="after")
    def _consistent(self) -> TriageConfig:
        _unique("triage.rules", [r.name for r in self.rules])
        _unique("triage.concepts", [c.name for c in self.concepts])
        known = {c.name for c in self.concepts}
        for rule in self.rules:
            unknown = sorted(set(rule.when.concepts) - known)
            if unknown:
                raise ValueError(f"triage rule {rule.name!r} names unknown concepts {unknown}")
        return self

    def concept_keywords(self) -> dict[str, tuple[str, ...]]:
        """Every concept's keyword phrases by name (what negation-aware detection needs)."""
        return {c.name: c.keywords for c in self.concepts}


def _unique(where: str, names: list[str]) -> None:
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: names must be unique")


# --- routing ------------------------------------------------------------------------------


class DestinationCapability(Section):
    """A destination that may be suggested: what it accepts.

    ``modalities``: the modalities it reads (empty: any); ``subspecialties``: its reading tags
    (``neuro``, ``msk``, ...); ``max_study_bytes``: the largest study it takes (None: any).
    """

    name: RouteName
    modalities: tuple[str, ...] = ()
    subspecialties: tuple[Tag, ...] = ()
    max_study_bytes: int | None = Field(default=None, gt=0)

    @field_validator("modalities")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _upper_codes(value, "modalities")


class RoutingMatch(Section):
    """A routing rule's conditions: each a list of allowed values (empty: any); all must hold.

    ``referring_physicians``: DICOM PN names (``Family^Given``) or ``sha256:<hex>`` digests of
    the normalised name (``physician_digest``); compared as hashes, never logged.
    """

    modalities: tuple[str, ...] = ()
    body_parts: tuple[str, ...] = ()
    description_keywords: tuple[Phrase, ...] = ()
    referring_physicians: tuple[str, ...] = ()
    priorities: tuple[TriagePriority, ...] = ()

    @field_validator("modalities", "body_parts")
    @classmethod
    def _codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _upper_codes(value, "modalities and body parts")

    @field_validator("referring_physicians")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_physician_names(value)

    def physician_digests(self) -> frozenset[str]:
        """Every ``referring_physicians`` entry as ``sha256:<hex>``."""
        return physician_digests(self.referring_physicians)


class RoutingRule(Section):
    """One rule: when it applies and which destinations it suggests.

    ``destinations``: candidates in order of preference (empty: every configured destination);
    ``subspecialties``: tags a candidate must all have.  Candidates are then filtered by what
    they accept (modalities, study size).
    """

    name: Name
    when: RoutingMatch = RoutingMatch()
    destinations: tuple[RouteName, ...] = ()
    subspecialties: tuple[Tag, ...] = ()


class RoutingConfig(Section):
    """Destinations with capabilities and ordered rules; every matching rule adds suggestions.

    ``capability_fallback``: when no rule matches, suggest every destination that accepts the
    study.  ``ignored_modalities``: modalities a destination need not accept (derived objects).
    """

    destinations: tuple[DestinationCapability, ...] = ()
    rules: tuple[RoutingRule, ...] = ()
    capability_fallback: bool = True
    max_suggestions: int = Field(default=3, ge=1, le=50)
    ignored_modalities: tuple[str, ...] = ("SR", "PR", "KO", "DOC")

    @model_validator(mode="after")
    def _consistent(self) -> RoutingConfig:
        _unique("routing.rules", [r.name for r in self.rules])
        _unique("routing.destinations", [d.name for d in self.destinations])
        known = {d.name for d in self.destinations}
        for rule in self.rules:
            unknown = sorted(set(rule.destinations) - known)
            if unknown:
                raise ValueError(f"routing rule {rule.name!r} names unknown destinations {unknown}")
        return self


# --- summary ------------------------------------------------------------------------------


class SummaryConfig(Section):
    """The transfer summary for the referrer.

    ``template``: Jinja source of the summary (rendered sandboxed, no autoescape); None: the
    packaged ``actors/inbound/templates/summary.txt.j2``.  ``llm_endpoint``: where a daemon-side
    ``SummaryWriter`` may rewrite the draft (a hook, off by default; actors never call it).
    """

    enabled: bool = True
    template: str | None = Field(default=None, min_length=1, max_length=20_000)
    llm_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    max_findings: int = Field(default=10, ge=0, le=100)

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                SandboxedEnvironment(autoescape=False).parse(value)
            except TemplateSyntaxError as exc:
                raise ValueError(f"summary.template does not compile (line {exc.lineno})") from exc
        return value
