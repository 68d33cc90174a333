"""``dxai policy explain``: which rules match an event and why, and what the policy decides.

The text names rules, conditions, codes and the event's own routing facts; never a referring
physician's name, never a patient identifier.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.events import StudyEvent
from dxai.daemon.policy.consent import ConsentVerdict
from dxai.daemon.policy.engine import PolicyEngine, Resolution, RuleTrace
from dxai.daemon.policy.facts import Facts

_MARK = {"match": "match", "no_match": "no match", "unknown": "not known"}


@dataclasses.dataclass(frozen=True)
class Explained:
    """One evaluation: the facts it used and the resolution (with every rule's trace)."""

    facts: Facts
    resolution: Resolution


def evaluations(
    engine: PolicyEngine,
    facts: Facts,
    modalities: Sequence[str] = (),
    sop_classes: Sequence[str] = (),
) -> list[Explained]:
    """One evaluation per (modality, SOP class) asked for (the event's facts alone if none)."""
    mods: Sequence[str | None] = [m.upper() for m in modalities] or [facts.modality]
    sops: Sequence[str | None] = list(sop_classes) or [facts.sop_class]
    out = []
    for modality in mods:
        for sop in sops:
            case = dataclasses.replace(facts, modality=modality, sop_class=sop)
            out.append(Explained(case, engine.resolve(case)))
    return out


def render(
    config: DxaiConfig,
    event: StudyEvent,
    cases: Sequence[Explained],
    consent: ConsentVerdict | None = None,
) -> str:
    """The explanation as text (see ``docs/policy.md`` for examples)."""
    lines = [f"event     {event.exchange_job_id}  study {event.study_uid}"]
    for n, case in enumerate(cases, start=1):
        if len(cases) > 1:
            lines += ["", f"case {n} of {len(cases)}"]
        lines += _facts(case.facts)
        lines += _rules(case.resolution)
        lines += _decision(config, case.resolution)
    if consent is not None:
        lines += ["", f"consent   {consent.code}: {consent.detail}"]
    return "\n".join(lines) + "\n"


def _facts(facts: Facts) -> list[str]:
    def shown(value: str | None) -> str:
        return value if value is not None else "(not known)"

    physician = "(given)" if facts.referring_physician else "(not known)"
    return [
        f"facts     workflow={shown(facts.workflow)} destination={shown(facts.destination)} "
        f"source={shown(facts.source)} priority={shown(facts.priority)}",
        f"          modality={shown(facts.modality)} sop_class={shown(facts.sop_class)} "
        f"referring_physician={physician}",
    ]


def _rules(resolution: Resolution) -> list[str]:
    lines = ["rules     (in order; the first that matches decides)"]
    decided = False
    for n, trace in enumerate(resolution.trace, start=1):
        lines.append(f"  {n}. {trace.name:<24} {_verdict(trace, decided)}")
        decided = decided or trace.matched
        if not trace.checks:
            lines.append("       (no conditions: matches every job)")
        for check in trace.checks:
            lines.append(f"       {check.field:<20} {_MARK[check.outcome]:<10} {check.shown}")
    tail = "decides" if resolution.rule == "default" else "not used"
    lines.append(f"  -  {'default':<24} {tail}")
    return lines


def _verdict(trace: RuleTrace, decided: bool) -> str:
    if trace.matched:
        return "MATCH (decides)" if not decided else "matches too (an earlier rule decides)"
    if trace.possible:
        return "may match once the instances are read"
    return "no match"


def _decision(config: DxaiConfig, res: Resolution) -> list[str]:
    options = config.deid.profiles[res.profile].options
    review = res.review
    timeout = (
        f"{res.review_timeout_s:g} s"
        if res.review_timeout_s is not None
        else f"review.retention_s ({config.review.retention_s:.0f} s)"
    )
    consent = "not required"
    if res.consent is not None:
        source = config.policy.consent_source
        kind = source.kind if source is not None else "none configured"
        consent = f"required, scope {', '.join(res.consent.scope)} (consent source: {kind})"
    return [
        f"decision  rule {res.rule}",
        f"  profile  {res.profile} (options: {', '.join(options) or 'none'})",
        f"  pixels   {res.pixels}",
        f"  review   {'required always' if review.required_always else 'on holds only'}; "
        f"pixel holds: {'review' if review.on_pixel_hold else 'block'}; "
        f"low confidence: {'review' if review.on_low_confidence else 'block'}",
        f"  timeout  {timeout}",
        f"  consent  {consent}",
    ]
