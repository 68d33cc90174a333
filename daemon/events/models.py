"""Versioned event contract of the streaming daemon (pydantic v2).

Input topic ``dxai.study.events`` carries :class:`StudyEvent`; output topics carry
:class:`DecisionEvent` (``dxai.study.decisions``) and :class:`ResultsEvent`
(``dxai.study.results``).  Poison input goes to ``dxai.dlq`` as the original bytes with the reason
in headers (see :mod:`dxai.daemon.events.codec`).  The contract is documented in ``docs/events.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    model_validator,
)

from dxai.configs.schema.routes import RouteName

SCHEMA_VERSION = 1

Uid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
EventType = Literal["study_scheduled_for_exchange", "study_received"]
Priority = Literal["stat", "urgent", "routine", "low"]
#: ``deferred``: the decision deadline passed with work still running; a final decision follows.
Decision = Literal["proceed", "hold", "block", "deferred"]
TaskStatus = Literal["passed", "held", "failed", "skipped", "timed_out"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class EventModel(BaseModel):
    """Strict on input (unknown keys rejected), immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DicomWebSource(EventModel):
    """Fetch by QIDO-RS/WADO-RS from a configured DICOMweb source.

    ``name`` picks a configured source; without it, ``base_url`` must equal (scheme, host, port,
    path) one configured source's, and neither means the ``default`` one.  The configured
    endpoint and its credentials are used, never the event's URL.
    """

    kind: Literal["dicomweb"] = "dicomweb"
    name: RouteName | None = None
    base_url: str | None = Field(default=None, max_length=2048)


class DimseSource(EventModel):
    """Fetch by C-GET, or by C-MOVE to our own Storage SCP, from a configured DIMSE source.

    ``name`` picks a configured source; without it, (``ae_title``, ``host``, ``port``) must
    equal one configured source's.  Method and move destination come from that configuration;
    an event value is accepted only when it equals the configured one.
    """

    kind: Literal["dimse"] = "dimse"
    name: RouteName | None = None
    ae_title: str | None = Field(default=None, min_length=1, max_length=16)
    host: str | None = Field(default=None, min_length=1, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    method: Literal["c-get", "c-move"] | None = None
    move_destination_ae: str | None = Field(default=None, min_length=1, max_length=16)
    move_destination_port: int | None = Field(default=None, ge=1, le=65535)

    @model_validator(mode="after")
    def _peer_or_name(self) -> DimseSource:
        peer = (self.ae_title, self.host, self.port)
        if self.name is None and any(p is None for p in peer):
            raise ValueError("give name, or ae_title, host and port")
        return self


class LocalSource(EventModel):
    """Read DICOM files from a folder inside a configured local root (or the landing zone).

    ``name`` picks a configured root (``path``, when given, must lie inside it; left out, the
    root itself); without it, ``path`` must lie inside some configured root.
    """

    kind: Literal["local"] = "local"
    name: RouteName | None = None
    path: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _path_or_name(self) -> LocalSource:
        if self.name is None and self.path is None:
            raise ValueError("give name or path")
        return self


class NamedSource(EventModel):
    """``{"name": "pacs"}``: the configured source of that name, whatever its kind."""

    name: RouteName


def _source_tag(value: Any) -> str | None:
    """The union member of a source: its ``kind``, or ``named`` for a bare ``{"name": ...}``."""
    if isinstance(value, dict):
        kind = value.get("kind")
        if kind is None and "name" in value:
            return "named"
        return kind if isinstance(kind, str) else None
    return "named" if isinstance(value, NamedSource) else getattr(value, "kind", None)


Source = Annotated[
    Annotated[DicomWebSource, Tag("dicomweb")]
    | Annotated[DimseSource, Tag("dimse")]
    | Annotated[LocalSource, Tag("local")]
    | Annotated[NamedSource, Tag("named")],
    Discriminator(_source_tag),
]


class StudyEvent(EventModel):
    """A study to process: where to fetch it, where its de-identified copy goes."""

    schema_version: Literal[1] = 1
    event_type: EventType
    study_uid: Uid
    destination: str = Field(min_length=1, max_length=128)
    exchange_job_id: JobId
    source: Source
    priority: Priority = "routine"
    hl7: str | None = Field(default=None, max_length=1_000_000)


class Reason(EventModel):
    """One reason behind a decision: a stable code plus PHI-free detail."""

    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    detail: str = Field(default="", max_length=512)
    blocking: bool = True


class DecisionEvent(EventModel):
    """proceed / hold / block for one job, sent within the decision deadline."""

    schema_version: Literal[1] = 1
    event_type: Literal["study_decision"] = "study_decision"
    exchange_job_id: JobId
    study_uid: Uid
    job_key: str
    pipeline_version: str
    decision: Decision
    reasons: tuple[Reason, ...] = ()
    partial: bool = Field(default=False, description="True when the deadline cut work short.")
    decided_at: datetime = Field(default_factory=utc_now)


class DeidCertificate(EventModel):
    """What was done to the study, for the receiving side's audit."""

    profile: str
    options: tuple[str, ...] = ()
    pixel_mode: str = "never"
    instances_deidentified: int = Field(ge=0)
    verified: bool
    pipeline_version: str
    issued_at: datetime = Field(default_factory=utc_now)
    # SHA-256 (hex) of every released instance, sorted: the receiver can check what arrived
    instances_sha256: tuple[str, ...] = ()
    # where the decision stands in the audit chain: its record's sequence number and the hash
    # of the record before it (``dxai audit export`` shows both)
    audit_seq: int | None = Field(default=None, ge=1)
    audit_prev_hash: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # the policy rules (``policy.rules`` names, or ``default``) that decided the study's
    # processing and release, in the order its instances first matched them
    policy_rules: tuple[str, ...] = ()


class TaskResult(EventModel):
    """The outcome of one task (de-id, pixel PHI, QC, triage...) over the study."""

    task: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    status: TaskStatus
    blocking: bool = True
    detail: str = Field(default="", max_length=512)
    counts: dict[str, int] = Field(default_factory=dict)


FindingCode = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_.]{0,63}$")]


class FindingResult(EventModel):
    """One finding of an inbound task (QC, preflight, triage, AI, priors, routing): a stable
    code, its severity and a PHI-free message (codes, counts, numbers, UIDs)."""

    code: FindingCode
    task: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    severity: Literal["info", "warning", "blocking"]
    message: str = Field(default="", max_length=512)
    series_uid: Uid | None = None
    value: float | None = None
    unit: str | None = Field(default=None, max_length=32)
    score: float | None = None


class PriorResult(EventModel):
    """A prior study of the same patient found on the archive, ranked (1 = most relevant)."""

    study_uid: Uid
    rank: int = Field(ge=1)
    modalities: tuple[str, ...] = ()
    match_score: float = Field(ge=0.0, le=1.0)
    relevance: float = Field(ge=0.0)


class RouteSuggestion(EventModel):
    """A destination the routing rules suggest for the study, with the rule that chose it."""

    destination: str = Field(max_length=128)
    rule: str = Field(max_length=64)
    why: str = Field(default="", max_length=256)


class InboundResults(EventModel):
    """What the receiving side gets (workflow ``inbound``): priority, findings, priors, routes,
    the referrer's summary, and where the SR and the HL7 result went."""

    priority: Literal["stat", "urgent", "routine"]
    priority_reasons: tuple[str, ...] = ()
    findings: tuple[FindingResult, ...] = ()
    priors: tuple[PriorResult, ...] = ()
    routes: tuple[RouteSuggestion, ...] = ()
    summary: str = Field(default="", max_length=4000)
    sr_stored: Literal["destination", "folder", "none", "failed"] = "none"
    hl7: Literal["sent", "written", "failed", "none"] = "none"
    hl7_control_id: str | None = Field(default=None, max_length=64)


class ResultsEvent(EventModel):
    """Everything known when the job finished: de-identified UID, certificate, tasks, SRs."""

    schema_version: Literal[1] = 1
    event_type: Literal["study_results"] = "study_results"
    exchange_job_id: JobId
    study_uid: Uid
    job_key: str
    pipeline_version: str
    state: Literal["released", "held_for_review", "blocked", "failed"]
    deidentified_study_uid: Uid | None = None
    certificate: DeidCertificate | None = None
    tasks: tuple[TaskResult, ...] = ()
    sr_uids: tuple[Uid, ...] = ()
    inbound: InboundResults | None = None
    instances_received: int = Field(default=0, ge=0)
    instances_released: int = Field(default=0, ge=0)
    instances_held: int = Field(default=0, ge=0)
    finished_at: datetime = Field(default_factory=utc_now)
