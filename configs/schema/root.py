"""The root configuration model."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.deid import DeidConfig
from dxai.configs.schema.inbound import InboundConfig
from dxai.configs.schema.inference import InferenceConfig
from dxai.configs.schema.policy import PolicyConfig
from dxai.configs.schema.review import ReviewConfig
from dxai.configs.schema.routes import (
    RouteName,
    default_conflicts,
    is_loopback,
    merged_destinations,
    merged_sources,
    move_problems,
)
from dxai.configs.schema.services import (
    DestinationSpec,
    DicomWebEndpoint,
    DimseEndpoint,
    HealthConfig,
    KafkaConfig,
    MetricsConfig,
    RayConfig,
    SourceSpec,
    TracingConfig,
)


class StateConfig(Section):
    """Durable state: job store, audit log, keys, results."""

    data_dir: str = "./dxai-data"
    sqlite_file: str = "dxai.sqlite3"


class EmbeddedIntakeConfig(Section):
    """Embedded-mode intake: C-STORE SCP landing zone, webhook and HL7 MLLP."""

    ae_title: str = Field(default="DXAI", min_length=1, max_length=16)
    dicom_port: int = Field(default=11112, ge=0, le=65535)
    study_quiet_period_s: float = Field(default=5.0, gt=0)
    study_open_association_max_s: float = Field(
        default=120.0,
        gt=0,
        description="A study is complete study_quiet_period_s after its last instance once the "
        "association sending it has closed (or moved on to another study); while it stays "
        "open, after this long without a new instance.",
    )
    http_port: int = Field(default=8080, ge=0, le=65535)
    mllp_port: int = Field(default=2575, ge=0, le=65535)
    bind_host: str = "127.0.0.1"
    landing_retention_s: float | None = Field(
        default=3600.0,
        ge=0,
        description="Delete a landing batch this long after its job finished released, blocked "
        "or failed (held batches are kept for review); None keeps every batch.",
    )
    landing_sweep_interval_s: float = Field(default=60.0, gt=0)
    webhook_bearer_token_file: str | None = Field(
        default=None,
        description="POST /events needs 'Authorization: Bearer <token>' (token read per request).",
    )
    webhook_hmac_secret_file: str | None = Field(
        default=None,
        description="POST /events needs 'X-Dxai-Signature: sha256=<hex HMAC-SHA256 of the body>'.",
    )

    def webhook_authenticated(self) -> bool:
        """True when the webhook asks for a token and/or a signature."""
        return self.webhook_bearer_token_file is not None or (
            self.webhook_hmac_secret_file is not None
        )


class PipelineConfig(Section):
    """Per-job behaviour of the orchestration.

    Deadlines count from the moment this daemon starts (or resumes) work on a job, so a restart
    does not spend them.  ``release``: ``study`` (default) sends nothing to the destination
    until every instance of the study passed; ``series`` streams each series' passed instances
    as soon as the series is done (a later hold may then follow a partial release).
    Staging: instances wait for the release in memory while all jobs together hold less than
    ``staging_memory_max_bytes`` there, then on disk under the data dir, up to
    ``staging_max_bytes``.
    """

    decision_deadline_s: float = Field(default=30.0, gt=0)
    job_deadline_s: float = Field(default=900.0, gt=0)
    cpu_workers: int = Field(default=2, ge=1, le=256)
    version: str = "1"
    release: Literal["study", "series"] = "study"
    staging_max_bytes: int = Field(default=20 * 1024**3, ge=1024**2)
    staging_memory_max_bytes: int = Field(default=256 * 1024**2, ge=0)
    outbox_retry_initial_s: float = Field(default=0.5, gt=0)
    outbox_retry_max_s: float = Field(default=30.0, gt=0)
    drain_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="On SIGTERM: intake stops, running jobs get this long to finish; the rest "
        "are cancelled (left unfinished in the job store, resumed at the next start).",
    )


class DxaiConfig(Section):
    """Everything dxai needs, validated before anything connects."""

    mode: Literal["embedded", "production"] = "embedded"
    state: StateConfig = StateConfig()
    deid: DeidConfig = DeidConfig()
    inference: InferenceConfig = InferenceConfig()
    pipeline: PipelineConfig = PipelineConfig()
    embedded: EmbeddedIntakeConfig = EmbeddedIntakeConfig()
    kafka: KafkaConfig | None = None
    ray: RayConfig | None = None
    sources: dict[RouteName, SourceSpec] = Field(default_factory=dict)
    destinations: dict[RouteName, DestinationSpec] = Field(default_factory=dict)
    source_dicomweb: DicomWebEndpoint | None = None
    destination_dicomweb: DicomWebEndpoint | None = None
    destination_dimse: DimseEndpoint | None = None
    metrics: MetricsConfig = MetricsConfig()
    health: HealthConfig = HealthConfig()
    tracing: TracingConfig = TracingConfig()
    review: ReviewConfig = ReviewConfig()
    policy: PolicyConfig = PolicyConfig()
    inbound: InboundConfig = InboundConfig()

    @model_validator(mode="after")
    def _mode_needs(self) -> DxaiConfig:
        if self.mode == "production" and self.kafka is None:
            raise ValueError("mode production requires a kafka section")
        if self.inference.backend == "ray" and self.ray is None:
            raise ValueError("inference.backend ray requires a ray section")
        return self

    @model_validator(mode="after")
    def _routes_consistent(self) -> DxaiConfig:
        legacy_dest = self.destination_dicomweb is not None or self.destination_dimse is not None
        problems = default_conflicts(
            self.sources, self.destinations, self.source_dicomweb is not None, legacy_dest
        )
        if self.mode == "embedded":
            problems += move_problems(self.source_routes(), self.embedded.dicom_port)
            emb = self.embedded
            if not is_loopback(emb.bind_host) and not emb.webhook_authenticated():
                problems.append(
                    "embedded.bind_host: the webhook would take unauthenticated events on a "
                    "non-loopback address; set embedded.webhook_bearer_token_file and/or "
                    "embedded.webhook_hmac_secret_file"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _policy_names_known(self) -> DxaiConfig:
        problems = []
        for name, decision in self.policy.decisions().items():
            if decision.profile is not None and decision.profile not in self.deid.profiles:
                problems.append(f"policy rule {name}: profile {decision.profile!r} is not defined")
        known_dest = set(self.destinations) | {"default"}
        known_src = set(self.source_routes()) | {"landing"}
        for rule in self.policy.rules:
            if self.destinations and not known_dest.issuperset(rule.match.destination):
                problems.append(f"policy rule {rule.name}: a destination is not configured")
            if self.source_routes() and not known_src.issuperset(rule.match.source):
                problems.append(f"policy rule {rule.name}: a source is not configured")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _inbound_names_known(self) -> DxaiConfig:
        inbound = self.inbound
        if not inbound.enabled:
            return self
        problems = []
        destinations = self.destination_routes()
        if inbound.sr_destination is not None and inbound.sr_destination not in destinations:
            problems.append("inbound.sr_destination: not a configured destination")
        for name in inbound.preflight:
            if name not in destinations:
                problems.append(f"inbound.preflight.{name}: not a configured destination")
        if inbound.priors.enabled:
            archive = self.source_routes().get(inbound.priors.archive)
            if archive is None or getattr(archive, "kind", "") not in ("dicomweb", "local"):
                problems.append(
                    "inbound.priors.archive: not a configured DICOMweb or local source (set "
                    "inbound.priors.enabled: false to run without priors)"
                )
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def source_routes(self) -> dict[str, SourceSpec]:
        """Every source an event may name: ``sources`` plus ``source_dicomweb`` as ``default``."""
        return merged_sources(self.sources, self.source_dicomweb)

    def destination_routes(self) -> dict[str, DestinationSpec]:
        """Every destination: ``destinations`` plus the legacy one (or, embedded, the folder)."""
        folder = self.results_folder() / "instances" if self.mode == "embedded" else None
        return merged_destinations(
            self.destinations, self.destination_dicomweb, self.destination_dimse, folder
        )

    def results_folder(self) -> Path:
        """Embedded outputs: ``<data_dir>/results`` (decisions/, results/, dlq/, instances/)."""
        return Path(self.state.data_dir) / "results"
