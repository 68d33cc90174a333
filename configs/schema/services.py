"""Configuration sections for the services dxai talks to: Kafka, Ray, archives, metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section


class KafkaConfig(Section):
    """Kafka intake and output topics (production mode)."""

    bootstrap_servers: str = "127.0.0.1:9092"
    group_id: str = "dxai"
    input_topic: str = "dxai.study.events"
    decisions_topic: str = "dxai.study.decisions"
    results_topic: str = "dxai.study.results"
    dlq_topic: str = "dxai.dlq"
    client_id: str = "dxai"
    transactional: bool = False
    max_in_flight_jobs: int = Field(default=8, ge=1, le=1024)
    session_timeout_ms: int = Field(default=30_000, ge=1_000)
    request_timeout_ms: int = Field(default=30_000, ge=1_000)
    retry_backoff_initial_s: float = Field(default=0.5, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    max_retries: int = Field(default=5, ge=0)


class RayConfig(Section):
    """Ray Serve settings; ``address`` None starts a local Ray instance."""

    address: str | None = None
    namespace: str = "dxai"
    http_port: int = Field(default=8000, ge=0, le=65535)
    num_cpus: int | None = Field(default=None, ge=1)


class DicomWebEndpoint(Section):
    """A DICOMweb service (source archive or destination)."""

    base_url: str
    timeout_s: float = Field(default=30.0, gt=0)
    username: str | None = None
    password_file: str | None = None
    # OAuth2 bearer token (cloud archives), read again on every request so that a sidecar can
    # rotate it; exclusive with username/password
    bearer_token_file: str | None = None

    @model_validator(mode="after")
    def _one_auth(self) -> DicomWebEndpoint:
        if self.bearer_token_file is not None and self.username is not None:
            raise ValueError("use either username/password_file or bearer_token_file, not both")
        return self


class DimseEndpoint(Section):
    """A DIMSE peer (C-STORE/C-GET/C-MOVE)."""

    ae_title: str = Field(min_length=1, max_length=16)
    host: str
    port: int = Field(ge=1, le=65535)


class MetricsConfig(Section):
    """Prometheus /metrics endpoint."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class TracingConfig(Section):
    """OpenTelemetry tracing."""

    enabled: bool = False
    exporter: Literal["none", "console", "otlp"] = "none"
    service_name: str = "dxai"
