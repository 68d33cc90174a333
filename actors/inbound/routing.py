"""Routing suggestions: which configured destinations (reading groups) suit a study.

Rules (``routing:`` config, :class:`~dxai.configs.schema.triage.RoutingConfig`) are matched on the
study type (modality, body part, description keywords), the referrer (as a hash:
:func:`~dxai.configs.schema.policy.physician_digest`) and the triage priority; each matching rule
proposes its destinations (or all), kept when they have the rule's subspecialty tags and accept the
study (modalities, size).  No rule matched: with ``capability_fallback`` every destination that
accepts the study.  These are suggestions: the daemon (or a person) decides where a study goes.

Nothing here holds a name: the referrer is hashed on input and the reasons name only codes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from dxai.actors.inbound.findings import Finding, TaskReport, report_of
from dxai.actors.inbound.study import StudyView
from dxai.actors.inbound.triage import has_phrase
from dxai.configs.schema.policy import physician_digest
from dxai.configs.schema.triage import DestinationCapability, RoutingConfig, RoutingRule

TASK = "routing"
CAPABILITY_RULE = "capability"


@dataclass(frozen=True)
class RoutingInput:
    """What routing looks at.  ``referrer_digest``: ``sha256:<hex>`` of the referring physician
    (:meth:`with_referrer` hashes a name); the description is free text, kept out of ``repr``."""

    modalities: tuple[str, ...] = ()
    body_part: str = ""
    study_description: str = field(default="", repr=False)
    referrer_digest: str | None = None
    priority: str | None = None
    study_size_bytes: int = 0

    def with_referrer(self, name: str | None) -> RoutingInput:
        """This input with the referrer ``name`` (DICOM PN or HL7 family^given) hashed."""
        digest = physician_digest(name) if name and name.strip("^ ") else None
        return RoutingInput(
            self.modalities,
            self.body_part,
            self.study_description,
            digest,
            self.priority,
            self.study_size_bytes,
        )

    @classmethod
    def from_study(
        cls, study: StudyView, *, priority: str | None = None, referrer: str | None = None
    ) -> RoutingInput:
        """The input for ``study``: modalities, body part, description and referrer from its
        first header (``referrer`` overrides, e.g. from the HL7 order), size from its
        instances, ``priority`` from triage."""
        header = study.first_header()
        name = referrer if referrer else str(header.get("ReferringPhysicianName", "") or "")
        base = cls(
            modalities=study.modalities,
            body_part=str(header.get("BodyPartExamined", "") or ""),
            study_description=str(header.get("StudyDescription", "") or ""),
            priority=priority,
            study_size_bytes=sum(i.size_bytes for s in study.series for i in s.instances),
        )
        return base.with_referrer(name)


@dataclass(frozen=True)
class RouteSuggestion:
    """A suggested destination, the rule that proposed it and why (PHI-free)."""

    destination: str
    rule: str
    why: str


@dataclass(frozen=True)
class RoutingResult:
    """Suggestions in order of preference (empty: nothing fits)."""

    suggestions: tuple[RouteSuggestion, ...] = ()
    rejected: int = 0

    @property
    def destinations(self) -> tuple[str, ...]:
        """The suggested destination names in order."""
        return tuple(s.destination for s in self.suggestions)

    def report(self) -> TaskReport:
        """The ``routing`` report: ``routing.suggested`` per suggestion, else ``routing.none``."""
        findings = [
            Finding(
                "routing.suggested",
                "info",
                f"{s.destination}: rule {s.rule} ({s.why})",
                TASK,
            )
            for s in self.suggestions
        ]
        if not findings:
            message = f"no destination fits the study ({self.rejected} rejected by capability)"
            findings.append(Finding("routing.none", "warning", message, TASK))
        return report_of(
            TASK,
            findings,
            f"{len(self.suggestions)} suggested",
            suggested=len(self.suggestions),
            rejected=self.rejected,
        )


def suggest_routes(inp: RoutingInput, config: RoutingConfig) -> RoutingResult:
    """The destinations ``config`` suggests for the study ``inp`` describes (pure CPU work)."""
    matched = [(rule, why) for rule in config.rules if (why := _rule_matches(rule, inp))]
    out: dict[str, RouteSuggestion] = {}
    rejected: set[str] = set()
    for rule, why in matched:
        if rule.subspecialties:
            why = f"{why}; subspecialty {','.join(rule.subspecialties)}"
        for dest in _candidates(rule, config):
            problem = _capability_problem(dest, rule.subspecialties, inp, config)
            if problem is not None:
                rejected.add(dest.name)
            elif dest.name not in out:
                out[dest.name] = RouteSuggestion(dest.name, rule.name, why)
    if not matched and config.capability_fallback:
        for dest in config.destinations:
            if _capability_problem(dest, (), inp, config) is None:
                out[dest.name] = RouteSuggestion(dest.name, CAPABILITY_RULE, _accepts(dest, inp))
            else:
                rejected.add(dest.name)
    chosen = tuple(out.values())[: config.max_suggestions]
    return RoutingResult(chosen, len(rejected - set(out)))


def _candidates(rule: RoutingRule, config: RoutingConfig) -> list[DestinationCapability]:
    by_name = {d.name: d for d in config.destinations}
    if rule.destinations:
        return [by_name[name] for name in rule.destinations if name in by_name]
    return list(config.destinations)


def _rule_matches(rule: RoutingRule, inp: RoutingInput) -> str:
    """Why ``rule`` matches ``inp`` (PHI-free), or "" when it does not."""
    when = rule.when
    why: list[str] = []
    modalities = _modalities(inp.modalities)
    if when.modalities:
        found = sorted(modalities & set(when.modalities))
        if not found:
            return ""
        why.append(f"modality {','.join(found)}")
    if when.body_parts:
        body = inp.body_part.strip().upper()
        if body not in when.body_parts:
            return ""
        why.append(f"body part {body}")
    if when.description_keywords:
        keys = [k for k in when.description_keywords if has_phrase(inp.study_description, k)]
        if not keys:
            return ""
        why.append(f"description keyword {keys[0]}")
    if when.referring_physicians:
        if inp.referrer_digest is None or inp.referrer_digest not in when.physician_digests():
            return ""
        why.append("referrer")
    if when.priorities:
        if inp.priority not in when.priorities:
            return ""
        why.append(f"priority {inp.priority}")
    return "; ".join(why) or "any study"


def _capability_problem(
    dest: DestinationCapability,
    tags: Iterable[str],
    inp: RoutingInput,
    config: RoutingConfig,
) -> str | None:
    """Why ``dest`` cannot take the study (a code), or None when it can."""
    missing_tags = set(tags) - set(dest.subspecialties)
    if missing_tags:
        return "subspecialty"
    needed = _modalities(inp.modalities) - set(config.ignored_modalities)
    if dest.modalities and not needed <= set(dest.modalities):
        return "modality"
    if dest.max_study_bytes is not None and inp.study_size_bytes > dest.max_study_bytes:
        return "size"
    return None


def _accepts(dest: DestinationCapability, inp: RoutingInput) -> str:
    mods = ",".join(sorted(_modalities(inp.modalities))) or "none"
    return f"accepts modality {mods}, {inp.study_size_bytes} bytes"


def _modalities(values: Iterable[str]) -> set[str]:
    return {m.strip().upper() for m in values if m.strip()}
