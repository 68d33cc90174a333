"""The policy applied to jobs: which processor each instance goes through, and what the study's
matched rules require before release (review, consent), recorded in the job's tally.

:class:`Governance` lives as long as the daemon (rules, the processors built for every
(profile, pixels) a rule names, the consent source); :meth:`Governance.for_job` gives one job
its :class:`JobGovernance`, which resolves the policy per instance (modality and SOP class from
its header when a rule needs them) and concludes the study's policy outcome.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from dxai.actors.outbound import InstanceOutcome, Member, ProcessorInfo
from dxai.actors.outbound.pixel_step import PixelActor
from dxai.actors.outbound.series import InstanceProcessor
from dxai.daemon.events import Reason, StudyEvent, TaskResult
from dxai.daemon.events.models import TaskStatus
from dxai.daemon.pipeline.outcome import PolicyOutcome, StudyTally
from dxai.daemon.policy.consent import ConsentSource, ConsentVerdict, check_consent
from dxai.daemon.policy.engine import PolicyEngine, Resolution
from dxai.daemon.policy.facts import Facts, HeaderFacts, facts_from_event, read_header_facts

LOW_CONFIDENCE = "pixel_low_confidence"
ProcessorKey = tuple[str, str]


@dataclass(frozen=True)
class Routed:
    """The processor an instance goes through and the policy that chose it."""

    processor: InstanceProcessor
    resolution: Resolution


class Governance:
    """The daemon's policy: engine, processors by (profile, pixels), consent source."""

    def __init__(
        self,
        engine: PolicyEngine,
        processors: Mapping[ProcessorKey, InstanceProcessor],
        consent: ConsentSource | None = None,
        source_name: Callable[[StudyEvent], str | None] | None = None,
        actor: PixelActor | None = None,
    ) -> None:
        self.engine, self.processors, self.consent = engine, dict(processors), consent
        self.source_name = source_name or (lambda _event: None)
        self.actor = actor

    def for_job(self, event: StudyEvent) -> JobGovernance:
        """The policy of one job, from its event's facts."""
        return JobGovernance(self, facts_from_event(event, self.source_name(event)))

    def processor(self, resolution: Resolution) -> InstanceProcessor:
        """The processor built for ``resolution`` (every one a rule names is built at start)."""
        return self.processors[resolution.key]


class JobGovernance:
    """One job's policy: routes its instances, then concludes what the matched rules require."""

    def __init__(self, governance: Governance, facts: Facts) -> None:
        self.governance, self.engine, self.facts = governance, governance.engine, facts
        self.header: HeaderFacts | None = None
        candidates = self.engine.candidates(facts)
        #: a rule that may apply holds (review, consent): nothing leaves before the study ends
        self.may_hold = any(r.review.required_always or r.consent for r in candidates)
        wants_physician = self.engine.uses_physician and facts.referring_physician is None
        self.needs_header = wants_physician or any(r.consent for r in candidates)
        self._used: dict[str, Resolution] = {}
        self._cache: dict[tuple[str, str], Resolution] = {}
        self._blocks: set[str] = set()

    async def read_header(self, raw: bytes) -> None:
        """Take the referring physician and patient identifier from the study's first instance
        (when the policy needs them; once per job)."""
        if self.header is not None or not self.needs_header:
            return
        self.header = await asyncio.to_thread(read_header_facts, raw)
        if self.facts.referring_physician is None and self.header.referring_physician:
            physician = self.header.referring_physician
            self.facts = dataclasses.replace(self.facts, referring_physician=physician)

    def route(self, member: Member) -> Routed:
        """The processor for one staged instance (its modality and SOP class matched)."""
        key = (member.modality, member.sop_class) if self.engine.uses_instances else ("", "")
        resolution = self._cache.get(key)
        if resolution is None:
            facts = self.facts.with_instance(*key) if self.engine.uses_instances else self.facts
            resolution = self._cache[key] = self.engine.resolve(facts)
        self._used.setdefault(resolution.rule, resolution)
        return Routed(self.governance.processor(resolution), resolution)

    def note(self, routed: Routed, outcome: InstanceOutcome) -> None:
        """Record a pixel hold the instance's rule does not send to review (it blocks)."""
        if outcome.status != "held" or not outcome.reason.startswith("pixel_"):
            return
        review = routed.resolution.review
        allowed = (
            review.on_low_confidence if outcome.reason == LOW_CONFIDENCE else review.on_pixel_hold
        )
        if not allowed:
            self._blocks.add("policy_no_review")

    async def conclude(self, tally: StudyTally) -> ConsentVerdict | None:
        """Fill ``tally.policy``: matched rules, certificate facts, review and consent holds,
        blocks; check consent when a matched rule requires it and something could be released.
        Returns the consent verdict when one was checked."""
        used = list(self._used.values()) or [self.engine.resolve(self.facts)]
        outcome = PolicyOutcome(
            rules=[r.rule for r in used],
            blocks=sorted(self._blocks),
            info=combined_info([self.governance.processor(r).info for r in used]),
            review_timeout_s=min((t for r in used if (t := r.review_timeout_s)), default=None),
        )
        for res in used:
            if res.review.required_always:
                detail = f"policy rule {res.rule} requires review"
                outcome.holds.append(Reason(code="review_required", detail=detail))
                break
        verdict = await self._consent(used) if tally.passed else None
        if verdict is not None:
            status: TaskStatus = "passed" if verdict.state == "valid" else "held"
            outcome.tasks.append(TaskResult(task="consent", status=status, detail=verdict.code))
            if verdict.state != "valid":
                outcome.holds.append(Reason(code=verdict.code, detail=verdict.detail[:512]))
        tally.policy = outcome
        return verdict

    async def _consent(self, used: Sequence[Resolution]) -> ConsentVerdict | None:
        """The worst verdict over the consents the matched rules require (None: none)."""
        scopes = list(dict.fromkeys(r.consent.scope for r in used if r.consent is not None))
        if not scopes:
            return None
        patient = self.header or HeaderFacts()
        verdicts = [await check_consent(self.governance.consent, patient, s) for s in scopes]
        rank = {"valid": 0, "missing": 1, "expired": 2, "unavailable": 3}
        return max(verdicts, key=lambda v: rank[v.state])


def combined_info(infos: Sequence[ProcessorInfo]) -> ProcessorInfo:
    """The certificate's processor facts for a study: the one processor's, or (instances went
    through several) profiles and pixel modes joined with ``+`` and every option."""
    unique = list(dict.fromkeys(infos))
    if len(unique) == 1:
        return unique[0]
    options = sorted({option for info in unique for option in info.options})
    return ProcessorInfo(
        profile="+".join(dict.fromkeys(i.profile for i in unique)),
        options=tuple(options),
        pixel_mode="+".join(dict.fromkeys(i.pixel_mode for i in unique)),
    )
