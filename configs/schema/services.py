"""Configuration sections for the services dxai talks to: Kafka, Ray, archives, metrics."""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

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
    commit_policy: Literal["watermark", "durable"] = Field(
        default="watermark",
        description="watermark: an input offset is committed once every job at or below it "
        "concluded and its outputs were produced (scale-out without loss, docs/scaleout.md); "
        "durable: once the job is in this node's job store (the node's disk must survive).",
    )
    state_topic: str = Field(
        default="dxai.jobs.state",
        description="Per-partition watermark snapshots (watermark policy); compacted, created "
        "with the input topic's partition count when missing.",
    )
    state_topic_replication_factor: int = Field(default=1, ge=1)
    transaction_timeout_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="How long the broker keeps a dead daemon's open transaction before "
        "aborting it: the new owner of its partitions waits for that.",
    )
    revoke_grace_s: float = Field(
        default=20.0,
        ge=0,
        description="When a partition moves to another daemon, how long its running jobs may "
        "still conclude here; jobs still running after that are run again by the new owner "
        "(their outputs are not published here).",
    )
    state_rebuild_timeout_s: float = Field(default=180.0, gt=0)
    max_uncommitted_offsets: int = Field(
        default=5_000,
        ge=1,
        description="A partition whose watermark lags its position by this many offsets is "
        "paused until the slow job holding it back concludes.",
    )


class RayConfig(Section):
    """Ray Serve settings; ``address`` None starts a local Ray instance."""

    address: str | None = None
    namespace: str = "dxai"
    http_port: int = Field(default=8000, ge=0, le=65535)
    num_cpus: int | None = Field(default=None, ge=1)
    applications: Literal["deploy", "attach"] = Field(
        default="deploy",
        description="deploy: the daemon deploys one Serve application per model (and deletes "
        "them when it stops); attach: someone else deployed them (a KubeRay RayService whose "
        "serveConfigV2 builds them with dxai.batching.serve_app:build); the daemon only calls "
        "them, never deploys or deletes.",
    )


class TlsSettings(Section):
    """Client TLS: the CA bundle that signs the peer, our client certificate, verification."""

    tls_ca_file: str | None = Field(
        default=None, description="PEM CA bundle for the peer; absent: the system store."
    )
    tls_cert_file: str | None = Field(default=None, description="PEM client certificate (mTLS).")
    tls_key_file: str | None = Field(
        default=None, description="PEM private key of tls_cert_file (absent: in that file)."
    )
    tls_verify: bool = Field(
        default=True, description="Verify the peer's certificate and host name (keep true)."
    )

    @model_validator(mode="after")
    def _key_needs_cert(self) -> TlsSettings:
        if self.tls_key_file is not None and self.tls_cert_file is None:
            raise ValueError("tls_key_file needs tls_cert_file")
        return self

    def tls_customised(self) -> bool:
        """True when any TLS setting differs from the defaults."""
        files = (self.tls_ca_file, self.tls_cert_file, self.tls_key_file)
        return any(f is not None for f in files) or not self.tls_verify


def check_http_url(value: str) -> str:
    """``value`` when it is an http(s) URL with a host and without credentials, a query or a
    fragment (credentials come from files, never from a URL); else ValueError."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError as exc:
        raise ValueError("not a valid URL") from exc
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must not carry credentials, a query or a fragment")
    return value


class DicomWebEndpoint(TlsSettings):
    """A DICOMweb service (source archive or destination); ``https`` uses the ``tls_*`` keys."""

    base_url: str = Field(max_length=2048)
    timeout_s: float = Field(default=30.0, gt=0)
    username: str | None = None
    password_file: str | None = None
    # OAuth2 bearer token (cloud archives), read again on every request so that a sidecar can
    # rotate it; exclusive with username/password
    bearer_token_file: str | None = None
    # STOW-RS sends in requests of at most this many instances / bytes of instances
    stow_max_instances: int = Field(default=50, ge=1, le=10_000)
    stow_max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    # a WADO-RS instance larger than this is refused (instance_too_large): one instance is held
    # in memory while it is parsed, and a broken or hostile archive may stream without end
    max_instance_bytes: int = Field(default=2 * 1024**3, ge=1024**2)
    # a QIDO-RS or STOW-RS answer larger than this is refused (answer_too_large): it is read
    # whole, and a broken or hostile peer may answer without end
    max_answer_bytes: int = Field(default=64 * 1024**2, ge=64 * 1024)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    @model_validator(mode="after")
    def _one_auth(self) -> DicomWebEndpoint:
        if self.bearer_token_file is not None and self.username is not None:
            raise ValueError("use either username/password_file or bearer_token_file, not both")
        if self.tls_customised() and not self.base_url.lower().startswith("https://"):
            raise ValueError("tls_* settings need an https:// base_url")
        return self


class DimseEndpoint(TlsSettings):
    """A DIMSE peer (C-STORE/C-GET/C-MOVE); ``tls: true`` wraps the association in TLS."""

    ae_title: str = Field(min_length=1, max_length=16)
    host: str = Field(min_length=1, max_length=255)
    port: int = Field(ge=1, le=65535)
    tls: bool = False
    tls_server_hostname: str | None = Field(
        default=None, description="Name checked against the peer's certificate; default: host."
    )
    # a C-FIND answered with more matches than this is refused (find_too_many_matches): the
    # matches are held in memory, and a broken or hostile peer may answer without end
    max_find_matches: int = Field(default=10_000, ge=1)

    @model_validator(mode="after")
    def _tls_switch(self) -> DimseEndpoint:
        if not self.tls and (self.tls_customised() or self.tls_server_hostname is not None):
            raise ValueError("tls_* settings need tls: true")
        return self


class DicomWebSourceSpec(DicomWebEndpoint):
    """A configured DICOMweb archive that events may fetch from (QIDO-RS + WADO-RS)."""

    kind: Literal["dicomweb"]


class DimseSourceSpec(DimseEndpoint):
    """A configured DIMSE archive: C-FIND, then C-GET or C-MOVE to our own Storage SCP.

    For ``c-move`` the archive must know ``move_destination_ae`` at this node's address and
    ``move_destination_port`` (defaults: ``embedded.ae_title`` / ``embedded.dicom_port``, the
    port in production mode only).  The receiving SCP accepts associations only from
    ``move_sender_ae`` (default: ``ae_title``, the AE the archive calls us with).
    """

    kind: Literal["dimse"]
    method: Literal["c-get", "c-move"] = "c-get"
    move_destination_ae: str | None = Field(default=None, min_length=1, max_length=16)
    move_destination_port: int | None = Field(default=None, ge=1, le=65535)
    move_sender_ae: str | None = Field(default=None, min_length=1, max_length=16)


class LocalSourceSpec(Section):
    """A folder on this machine; events may read only inside it (symlinks resolved)."""

    kind: Literal["local"]
    root: str = Field(min_length=1, max_length=4096)


SourceSpec = Annotated[
    DicomWebSourceSpec | DimseSourceSpec | LocalSourceSpec, Field(discriminator="kind")
]


class DicomWebDestinationSpec(DicomWebEndpoint):
    """A configured STOW-RS destination."""

    kind: Literal["dicomweb"]


class DimseDestinationSpec(DimseEndpoint):
    """A configured C-STORE destination."""

    kind: Literal["dimse"]


class FolderDestinationSpec(Section):
    """A configured destination folder (``<study>/<series>/<sop>.dcm`` files)."""

    kind: Literal["folder"]
    path: str = Field(min_length=1, max_length=4096)


DestinationSpec = Annotated[
    DicomWebDestinationSpec | DimseDestinationSpec | FolderDestinationSpec,
    Field(discriminator="kind"),
]


class MetricsConfig(Section):
    """Prometheus /metrics endpoint (docs/observability.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)
    sample_interval_s: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="Jobs by state, the review backlog and consumer lag are sampled this often.",
    )


class HealthConfig(Section):
    """``/healthz`` and ``/readyz`` on the metrics port: how they are judged.

    ``/healthz`` answers 200 while the event loop runs a callback within ``loop_timeout_s``.
    ``/readyz`` answers 200 while the broker is connected with partitions assigned (Kafka mode),
    every configured source and destination answered its last probe, the models loaded and the
    staging area holds less than ``staging_ready_max_fraction`` of ``pipeline.staging_max_bytes``.
    """

    loop_timeout_s: float = Field(
        default=2.0, gt=0, description="The event loop must answer /healthz within this."
    )
    probe_interval_s: float = Field(
        default=10.0, gt=0, description="Broker, sources and destinations are probed this often."
    )
    probe_timeout_s: float = Field(
        default=5.0, gt=0, description="One probe (connect, HTTP answer, metadata) gives up after."
    )
    require_partitions: bool = Field(
        default=True,
        description="Kafka mode: not ready while the group gave this daemon no partition.",
    )
    staging_ready_max_fraction: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="Not ready once staged bytes on disk reach this share of staging_max_bytes.",
    )


class TracingConfig(Section):
    """OpenTelemetry tracing (docs/observability.md).

    Spans are always made (the input's trace continues to the output events); ``enabled`` with
    an ``exporter`` also exports them, in the background: ``console`` (standard output) or
    ``otlp`` (OTLP/HTTP protobuf to ``otlp_endpoint`` + ``/v1/traces``).  The export queue is
    bounded: when the collector is slow or down, spans are dropped, the pipeline never waits.
    """

    enabled: bool = False
    exporter: Literal["none", "console", "otlp"] = "none"
    service_name: str = Field(default="dxai", min_length=1, max_length=128)
    otlp_endpoint: str = Field(
        default="http://127.0.0.1:4318",
        min_length=1,
        max_length=1024,
        description="OTLP/HTTP collector base URL (the exporter posts to <url>/v1/traces).",
    )
    otlp_timeout_s: float = Field(
        default=10.0, gt=0, le=300, description="One export request gives up after this."
    )
    export_interval_s: float = Field(
        default=2.0, gt=0, le=300, description="Ended spans are exported at least this often."
    )
    export_queue_max_spans: int = Field(
        default=8192, ge=1, le=1_000_000, description="Spans waiting beyond this are dropped."
    )
    export_batch_max_spans: int = Field(
        default=512, ge=1, le=100_000, description="Spans per export request, at most."
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("otlp_endpoint must be an http:// or https:// URL")
        return value
