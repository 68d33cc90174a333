"""Rule matching: the first rule whose every condition holds decides, else the default.

:meth:`PolicyEngine.resolve` returns the decision and, for ``dxai policy explain``, the trace of
every rule: each condition's outcome (``match``, ``no_match`` or ``unknown``: the fact is not
known yet).  A trace never holds a referring physician's name or hash, only whether it matched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dxai.configs.schema.deid import DeidConfig, PixelMode
from dxai.configs.schema.policy import (
    DEFAULT_RULE,
    ConsentRequirement,
    PolicyConfig,
    PolicyDecision,
    PolicyMatch,
    PolicyRule,
    ReviewRequirement,
)
from dxai.daemon.policy.facts import Facts

Outcome = Literal["match", "no_match", "unknown"]
#: the conditions, in the order they are checked and shown
FIELDS = (
    "workflow", "destination", "source", "priority", "modality", "sop_class",
    "referring_physician",
)  # fmt: skip
INSTANCE_FIELDS = frozenset({"modality", "sop_class"})


@dataclass(frozen=True)
class Check:
    """One condition of one rule: the field, its outcome, and what may be shown of it."""

    field: str
    outcome: Outcome
    shown: str


@dataclass(frozen=True)
class RuleTrace:
    """How one rule fared: matched when every check is ``match``."""

    name: str
    checks: tuple[Check, ...]

    @property
    def matched(self) -> bool:
        """Whether every condition holds."""
        return all(c.outcome == "match" for c in self.checks)

    @property
    def possible(self) -> bool:
        """Whether the rule may still match once unknown facts are known."""
        return all(c.outcome != "no_match" for c in self.checks)


@dataclass(frozen=True)
class Resolution:
    """The policy for one job (or instance): the deciding rule and its settings, filled in
    from ``deid`` where the rule leaves them out."""

    rule: str
    profile: str
    pixels: PixelMode
    review: ReviewRequirement
    review_timeout_s: float | None
    consent: ConsentRequirement | None
    trace: tuple[RuleTrace, ...] = ()

    @property
    def key(self) -> tuple[str, str]:
        """The processor this policy needs: (profile, pixels)."""
        return self.profile, self.pixels


class PolicyEngine:
    """The configured rules of ``policy`` over the ``deid`` defaults."""

    def __init__(self, policy: PolicyConfig, deid: DeidConfig) -> None:
        self.policy, self.deid = policy, deid
        self._digests = {rule.name: rule.match.physician_digests() for rule in policy.rules}

    @property
    def uses_instances(self) -> bool:
        """Whether some rule matches on modality or SOP class."""
        return any(_fields(rule.match) & INSTANCE_FIELDS for rule in self.policy.rules)

    @property
    def uses_physician(self) -> bool:
        """Whether some rule matches on the referring physician."""
        return any(rule.match.referring_physician for rule in self.policy.rules)

    def resolve(self, facts: Facts) -> Resolution:
        """The first rule that matches ``facts`` (else the default), with every rule's trace."""
        traces = tuple(self.trace(rule, facts) for rule in self.policy.rules)
        for rule, trace in zip(self.policy.rules, traces, strict=True):
            if trace.matched:
                return self._resolved(rule.name, rule.then, traces)
        return self._resolved(DEFAULT_RULE, self.policy.default, traces)

    def candidates(self, facts: Facts) -> list[Resolution]:
        """Every decision that may apply once the unknown facts are known (the default too,
        unless a rule matches already): what a job must be prepared for."""
        out = []
        for rule in self.policy.rules:
            trace = self.trace(rule, facts)
            if trace.possible:
                out.append(self._resolved(rule.name, rule.then))
            if trace.matched:
                return out
        return [*out, self._resolved(DEFAULT_RULE, self.policy.default)]

    def all_resolutions(self) -> list[Resolution]:
        """Every rule's decision and the default's (to build their processors up front)."""
        rules = [self._resolved(r.name, r.then) for r in self.policy.rules]
        return [*rules, self._resolved(DEFAULT_RULE, self.policy.default)]

    def _resolved(
        self, name: str, then: PolicyDecision, trace: tuple[RuleTrace, ...] = ()
    ) -> Resolution:
        return Resolution(
            rule=name,
            profile=then.profile or self.deid.profile,
            pixels=then.pixels or self.deid.pixels,
            review=then.review,
            review_timeout_s=then.review_timeout_s,
            consent=then.consent,
            trace=trace,
        )

    def trace(self, rule: PolicyRule, facts: Facts) -> RuleTrace:
        """Each condition of ``rule`` checked against ``facts``."""
        checks = []
        for name in FIELDS:
            allowed: tuple[str, ...] = getattr(rule.match, name)
            if not allowed:
                continue
            value: str | None = getattr(facts, name)
            if name == "referring_physician":
                checks.append(_physician_check(value, self._digests[rule.name]))
                continue
            shown = ", ".join(allowed)
            if value is None:
                checks.append(Check(name, "unknown", f"not known (rule wants {shown})"))
            elif value in allowed:
                checks.append(Check(name, "match", f"{value} in [{shown}]"))
            else:
                checks.append(Check(name, "no_match", f"{value} not in [{shown}]"))
        return RuleTrace(rule.name, tuple(checks))


def _fields(match: PolicyMatch) -> set[str]:
    return {name for name in FIELDS if getattr(match, name)}


def _physician_check(digest: str | None, allowed: frozenset[str]) -> Check:
    """Whether the physician matched; never the name or its hash."""
    count = f"{len(allowed)} listed"
    if digest is None:
        return Check("referring_physician", "unknown", f"not known ({count})")
    if digest in allowed:
        return Check("referring_physician", "match", f"one of the {count}")
    return Check("referring_physician", "no_match", f"none of the {count}")
