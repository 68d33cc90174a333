"""The ``policy:`` section: rules that decide, per job, how a study is de-identified and released.

An ordered list of ``rules``; each has a ``name``, a ``match`` (conditions on the job) and a
``then`` (what applies).  The first rule whose every condition holds wins; a job no rule matches
gets ``default``.  A condition is a list of allowed values (empty: any); a fact the daemon does
not know (a modality before the instance is read) never satisfies a condition.

Facts: ``workflow`` (``outbound``: the daemon's de-identification path), ``destination`` (the
event's), ``source`` (the configured source name the event resolves to; ``landing`` for the
embedded C-STORE landing zone), ``priority``, ``referring_physician`` (from the event's HL7
order, else the study's first instance; matched as a hash, never logged), ``modality`` and
``sop_class`` (per instance).  ``then`` picks the de-identification ``profile`` (one of
``deid.profiles``), the ``pixels`` mode, when human ``review`` is required, the review time-out
and whether a valid ``consent`` for the destination is needed (see ``docs/policy.md``).
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import Field, StringConstraints, field_validator, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.deid import PixelMode
from dxai.configs.schema.services import TlsSettings

Workflow = Literal["outbound", "inbound"]
Priority = Literal["stat", "urgent", "routine", "low"]
RuleName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
SopClass = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
ConsentCode = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
DEFAULT_RULE = "default"
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def physician_key(name: str) -> str:
    """A person name normalised for matching: DICOM PN order (family^given^middle),
    case-folded, components stripped, trailing empty components dropped."""
    parts = [p.strip().casefold() for p in name.split("^")[:3]]
    while parts and not parts[-1]:
        parts.pop()
    return "^".join(parts)


def physician_digest(name: str) -> str:
    """``sha256:<hex>`` of :func:`physician_key` of ``name``: what a name is matched as."""
    return "sha256:" + hashlib.sha256(physician_key(name).encode("utf-8")).hexdigest()


def check_physician_names(value: tuple[str, ...]) -> tuple[str, ...]:
    """``value`` when every entry is a name or a well-formed ``sha256:<hex>``; else ValueError."""
    for entry in value:
        if entry.startswith("sha256:") and not _DIGEST.match(entry):
            raise ValueError("a sha256: entry needs 64 lower-case hex digits")
        if not physician_key(entry):
            raise ValueError("an empty referring physician name")
    return value


def physician_digests(entries: tuple[str, ...]) -> frozenset[str]:
    """Every entry (a name or ``sha256:<hex>``) as ``sha256:<hex>``."""
    return frozenset(e if _DIGEST.match(e) else physician_digest(e) for e in entries)


class PolicyMatch(Section):
    """The conditions of a rule: each a list of allowed values; empty means any value."""

    workflow: tuple[Workflow, ...] = ()
    destination: tuple[str, ...] = ()
    source: tuple[str, ...] = ()
    priority: tuple[Priority, ...] = ()
    modality: tuple[str, ...] = ()
    sop_class: tuple[SopClass, ...] = ()
    referring_physician: tuple[str, ...] = Field(
        default=(),
        description="Names as DICOM PN (Family^Given) or sha256:<hex> of the normalised name "
        "(`dxai policy explain --referring-physician NAME` prints it); compared as hashes.",
    )

    @field_validator("modality")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not m or m != m.upper() or len(m) > 16 for m in value):
            raise ValueError("modalities are upper-case DICOM codes (CT, MR, US, ...)")
        return value

    @field_validator("referring_physician")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return check_physician_names(value)

    def physician_digests(self) -> frozenset[str]:
        """Every ``referring_physician`` entry as ``sha256:<hex>``."""
        return physician_digests(self.referring_physician)


class ReviewRequirement(Section):
    """When a study goes to human review.

    ``required_always``: every study the rule covers is held for review (reason
    ``review_required``), even when everything passed.  ``on_pixel_hold`` / ``on_low_confidence``
    false: an instance the pixel step holds (legible PHI, the second reader; or only a verify of
    low confidence) blocks the study instead of sending it to review (reason
    ``policy_no_review``); nothing is released either way.
    """

    required_always: bool = False
    on_pixel_hold: bool = True
    on_low_confidence: bool = True


class ConsentRequirement(Section):
    """A valid consent / authorisation is needed before release: an active FHIR R4 Consent of
    the patient whose ``scope`` (or ``category``) has one of ``scope``, permitting, and whose
    provision period covers now."""

    scope: tuple[ConsentCode, ...] = Field(default=("research",), min_length=1)


class PolicyDecision(Section):
    """What a rule (or the default) applies; a field left out keeps the ``deid`` setting."""

    profile: str | None = None
    pixels: PixelMode | None = None
    review: ReviewRequirement = ReviewRequirement()
    review_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Expire an undecided review after this (review.retention_s).",
    )
    consent: ConsentRequirement | None = None


class PolicyRule(Section):
    """One rule: its name, conditions and decision."""

    name: RuleName
    match: PolicyMatch = PolicyMatch()
    then: PolicyDecision = PolicyDecision()

    @field_validator("name")
    @classmethod
    def _not_default(cls, value: str) -> str:
        if value == DEFAULT_RULE:
            raise ValueError(f"{DEFAULT_RULE!r} names the policy's default, not a rule")
        return value


class ConsentSourceConfig(TlsSettings):
    """Where consents are read: a folder of FHIR JSON files (Consent resources or Bundles), or
    a FHIR R4 server (``POST <base_url>/Consent/_search`` by patient identifier)."""

    kind: Literal["folder", "fhir"]
    folder: str | None = Field(default=None, min_length=1)
    base_url: str | None = Field(default=None, pattern=r"^https?://")
    bearer_token_file: str | None = None
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    # a consent server answer larger than this is refused (the consent is then unavailable)
    max_answer_bytes: int = Field(default=16 * 1024**2, ge=64 * 1024)
    identifier_system: str | None = Field(
        default=None,
        min_length=1,
        description="FHIR identifier system of the DICOM Patient ID (searched as system|value).",
    )

    @model_validator(mode="after")
    def _where(self) -> ConsentSourceConfig:
        if self.kind == "folder" and self.folder is None:
            raise ValueError("a folder consent source needs folder")
        if self.kind == "fhir" and self.base_url is None:
            raise ValueError("a fhir consent source needs base_url")
        return self


class PolicyConfig(Section):
    """Ordered rules, first match wins, else ``default`` (see the module doc)."""

    rules: tuple[PolicyRule, ...] = ()
    default: PolicyDecision = PolicyDecision()
    consent_source: ConsentSourceConfig | None = None

    @model_validator(mode="after")
    def _unique(self) -> PolicyConfig:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("policy.rules: rule names must be unique")
        needs = [d for d in self.decisions().values() if d.consent is not None]
        if needs and self.consent_source is None:
            raise ValueError("policy: a rule requires consent but policy.consent_source is not set")
        return self

    def decisions(self) -> dict[str, PolicyDecision]:
        """Every rule's decision by name, and the default's."""
        return {**{r.name: r.then for r in self.rules}, DEFAULT_RULE: self.default}
