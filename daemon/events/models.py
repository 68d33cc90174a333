"""Versioned event contract of the streaming daemon (pydantic v2).

Input topic ``dxai.study.events`` carries :class:`StudyEvent`; output topics carry
:class:`DecisionEvent` (``dxai.study.decisions``) and :class:`ResultsEvent`
(``dxai.study.results``).  Poison input goes to ``dxai.dlq`` as the original bytes with the reason
in headers (see :mod:`dxai.daemon.events.codec`).  The contract is documented in ``docs/events.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

SCHEMA_VERSION = 1

Uid = Annotated[str, StringConstraints(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)]
JobId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:/-]{1,128}$")]
EventType = Literal["study_scheduled_for_exchange", "study_received"]
Priority = Literal["stat", "urgent", "routine", "low"]
Decision = Literal["proceed", "hold", "block"]
TaskStatus = Literal["passed", "held", "failed", "skipped", "timed_out"]


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class EventModel(BaseModel):
    """Strict on input (unknown keys rejected), immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DicomWebSource(EventModel):
    """Fetch by QIDO-RS/WADO-RS; ``base_url`` None means the configured ``source_dicomweb``."""

    kind: Literal["dicomweb"] = "dicomweb"
    base_url: str | None = Field(default=None, max_length=2048)


class DimseSource(EventModel):
    """Fetch by C-GET, or by C-MOVE to our own Storage SCP, from a DIMSE peer.

    For ``c-move`` the peer must know ``move_destination_ae`` at this node's address and
    ``move_destination_port``; left out, they default to the daemon's ``embedded.ae_title``
    and ``embedded.dicom_port`` (production mode only: in embedded mode that port is the
    landing zone's, so the event must name another).
    """

    kind: Literal["dimse"] = "dimse"
    ae_title: str = Field(min_length=1, max_length=16)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    method: Literal["c-get", "c-move"] = "c-get"
    move_destination_ae: str | None = Field(default=None, min_length=1, max_length=16)
    move_destination_port: int | None = Field(default=None, ge=1, le=65535)


class LocalSource(EventModel):
    """Read DICOM files from a folder on this machine (embedded landing zone, tests)."""

    kind: Literal["local"] = "local"
    path: str = Field(min_length=1, max_length=4096)


Source = Annotated[DicomWebSource | DimseSource | LocalSource, Field(discriminator="kind")]


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


class TaskResult(EventModel):
    """The outcome of one task (de-id, pixel PHI, QC, triage...) over the study."""

    task: str = Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")
    status: TaskStatus
    blocking: bool = True
    detail: str = Field(default="", max_length=512)
    counts: dict[str, int] = Field(default_factory=dict)


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
    instances_received: int = Field(default=0, ge=0)
    instances_released: int = Field(default=0, ge=0)
    instances_held: int = Field(default=0, ge=0)
    finished_at: datetime = Field(default_factory=utc_now)
