"""The ``inbound:`` section: what the receiving side gets from a study (issue 15).

With ``enabled`` true, ``study_received`` events run the inbound workflow (QC / preflight gate,
AI tasks, priors, triage, routing suggestions, the referrer's summary, a TID 1500 SR stored to
the archive and an HL7 ORU^R01 to the RIS) instead of the outbound de-identification;
``study_scheduled_for_exchange`` events stay outbound.  Off by default: ``study_received``
events are then de-identified as before.
"""

from __future__ import annotations

from pydantic import Field

from dxai.configs.schema.ai_tasks import AiTasksConfig
from dxai.configs.schema.base import Section
from dxai.configs.schema.clinical_out import Hl7OutConfig, SrConfig
from dxai.configs.schema.priors import PriorsConfig
from dxai.configs.schema.qc import PreflightTarget, QcConfig
from dxai.configs.schema.routes import RouteName
from dxai.configs.schema.triage import RoutingConfig, SummaryConfig, TriageConfig


class InboundConfig(Section):
    """The inbound workflow's tasks and outputs (see the module doc and ``docs/inbound.md``)."""

    enabled: bool = Field(
        default=False,
        description="study_received events run the inbound workflow (else they are "
        "de-identified like study_scheduled_for_exchange).",
    )
    qc: QcConfig = QcConfig()
    preflight: dict[RouteName, PreflightTarget] = Field(
        default_factory=dict,
        description="Per configured destination name: its limits, checked against the study.",
    )
    triage: TriageConfig = TriageConfig()
    routing: RoutingConfig = RoutingConfig()
    priors: PriorsConfig = PriorsConfig()
    ai: AiTasksConfig = AiTasksConfig()
    sr: SrConfig = SrConfig()
    sr_destination: RouteName | None = Field(
        default=None,
        description="The configured destination the SR is stored to; None: the event's "
        "destination (embedded mode: <data_dir>/results/sr/<job_key>/).",
    )
    hl7: Hl7OutConfig = Hl7OutConfig()
    summary: SummaryConfig = SummaryConfig()
    task_deadline_s: float = Field(
        default=300.0, gt=0, description="Each task's own deadline within the job's."
    )
