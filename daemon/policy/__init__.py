"""The policy engine (issue #14, governance): rules matched on a job's facts decide the
de-identification profile, the pixel mode, when human review is required, the review time-out
and whether a valid consent is needed before release (``configs/schema/policy.py``,
``docs/policy.md``)."""

from dxai.daemon.policy.engine import Check, PolicyEngine, Resolution, RuleTrace
from dxai.daemon.policy.facts import Facts, HeaderFacts, facts_from_event
from dxai.daemon.policy.governance import Governance, JobGovernance, Routed

__all__ = [
    "Check",
    "Facts",
    "Governance",
    "HeaderFacts",
    "JobGovernance",
    "PolicyEngine",
    "Resolution",
    "Routed",
    "RuleTrace",
    "facts_from_event",
]
