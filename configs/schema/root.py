"""The root configuration model."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.deid import DeidConfig
from dxai.configs.schema.inference import InferenceConfig
from dxai.configs.schema.services import (
    DicomWebEndpoint,
    DimseEndpoint,
    KafkaConfig,
    MetricsConfig,
    RayConfig,
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


class PipelineConfig(Section):
    """Per-job behaviour of the orchestration."""

    decision_deadline_s: float = Field(default=30.0, gt=0)
    job_deadline_s: float = Field(default=900.0, gt=0)
    cpu_workers: int = Field(default=2, ge=1, le=256)
    version: str = "1"


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
    source_dicomweb: DicomWebEndpoint | None = None
    destination_dicomweb: DicomWebEndpoint | None = None
    destination_dimse: DimseEndpoint | None = None
    metrics: MetricsConfig = MetricsConfig()
    tracing: TracingConfig = TracingConfig()

    @model_validator(mode="after")
    def _mode_needs(self) -> DxaiConfig:
        if self.mode == "production" and self.kafka is None:
            raise ValueError("mode production requires a kafka section")
        if self.inference.backend == "ray" and self.ray is None:
            raise ValueError("inference.backend ray requires a ray section")
        return self
