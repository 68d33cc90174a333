"""Inbound AI tasks: registry models run under a contract, and external HTTP JSON AI services.

A :class:`ModelTaskContract` says which series a registry model takes, how their pixels become
its input (rescale, window, bilinear resample, channels, normalisation, which instances) and how
its outputs become findings (code, SR concept, threshold, severity, aggregation).  An
:class:`AiServiceConfig` names a vendor's HTTP JSON service that gets the study's UIDs (never
patient data) and answers with findings.  Task names start with ``ai_``; finding codes with
``ai.``.  The list items need their identifying keys (name, model, url, code); every other key,
and :class:`AiTasksConfig` itself, has a default.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, field_validator, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.services import TlsSettings, check_http_url

TASK_NAME = r"^ai_[a-z0-9_]{1,44}$"
FINDING_CODE = r"^ai\.[a-z0-9][a-z0-9_.-]{0,62}$"
Severity = Literal["info", "warning", "blocking"]


class SeriesSelector(Section):
    """Which series a task takes; an empty tuple matches anything.

    Keywords match case-insensitively as substrings of SeriesDescription / BodyPartExamined.
    Instances whose ImageType holds one of ``skip_image_types`` are left out first; the
    instance bounds apply to what remains.
    """

    modalities: tuple[str, ...] = ()
    description_keywords: tuple[str, ...] = ()
    body_part_keywords: tuple[str, ...] = ()
    min_instances: int = Field(default=1, ge=1)
    max_instances: int | None = Field(default=None, ge=1)
    skip_image_types: tuple[str, ...] = ("LOCALIZER",)

    @field_validator("modalities", "skip_image_types")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in value)

    @field_validator("description_keywords", "body_part_keywords")
    @classmethod
    def _lower(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not v.strip() for v in value):
            raise ValueError("keywords must not be empty")
        return tuple(v.strip().lower() for v in value)

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.max_instances is not None and self.max_instances < self.min_instances:
            raise ValueError("max_instances must be >= min_instances")
        return self


class PreprocessConfig(Section):
    """How one instance becomes a float32 ``channels x size[0] x size[1]`` model item.

    Order: rescale (slope/intercept) → window to [0, 1] → bilinear resample → channels →
    ``(x - mean) / std``.  ``window``: ``auto`` uses the header's first WindowCenter /
    WindowWidth (the image's min/max when absent), ``fixed`` uses ``window_center`` /
    ``window_width``, ``minmax`` the image's min/max, ``none`` keeps the values.  MONOCHROME1
    is inverted after windowing.  A multi-frame instance gives its middle frame.
    """

    apply_rescale: bool = True
    window: Literal["auto", "fixed", "minmax", "none"] = "auto"
    window_center: float | None = None
    window_width: float | None = Field(default=None, gt=0)
    size: tuple[int, int] = (256, 256)
    channels: int = Field(default=1, ge=1, le=4)
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)
    instances: Literal["all", "middle", "every_nth"] = "all"
    every_nth: int = Field(default=1, ge=1)
    max_instances: int = Field(default=64, ge=1, le=4096)

    @field_validator("size")
    @classmethod
    def _size(cls, value: tuple[int, int]) -> tuple[int, int]:
        if not all(1 <= v <= 4096 for v in value):
            raise ValueError("size must be [height, width] between 1 and 4096")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        fixed = self.window_center is not None and self.window_width is not None
        if (self.window == "fixed") != fixed:
            raise ValueError("window fixed needs window_center and window_width (and only it)")
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, self.channels):
                raise ValueError(f"{name} needs 1 or `channels` values")
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class ConceptConfig(Section):
    """The SR concept of a finding: code value, coding scheme designator, code meaning."""

    value: str = Field(min_length=1, max_length=64)
    scheme: str = Field(min_length=1, max_length=16)
    meaning: str = Field(min_length=1, max_length=64)


class OutputFinding(Section):
    """One model output (``index`` into the item's flattened output) → one finding per series.

    The series score aggregates the instances' scores (``max`` or ``mean``); the finding is
    emitted with ``severity`` when the score is >= ``threshold`` (``report_below``: an
    ``info`` finding otherwise).  ``measurement``: the score is also the finding's value.
    """

    index: int = Field(default=0, ge=0)
    code: str = Field(pattern=FINDING_CODE)
    concept: ConceptConfig | None = None
    threshold: float = 0.5
    severity: Severity = "warning"
    aggregate: Literal["max", "mean"] = "max"
    measurement: bool = False
    unit: str = Field(default="1", min_length=1, max_length=16)
    report_below: bool = False


class ModelTaskContract(Section):
    """A registry model run as an inbound task: what it takes, how it is fed, what it means."""

    name: str = Field(pattern=TASK_NAME)
    model: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    blocking: bool = False
    deadline_s: float = Field(default=120.0, gt=0, le=3600)
    series: SeriesSelector = SeriesSelector()
    preprocess: PreprocessConfig = PreprocessConfig()
    activation: Literal["none", "sigmoid", "softmax"] = "none"
    outputs: tuple[OutputFinding, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _outputs(self) -> Self:
        codes = [o.code for o in self.outputs]
        if len(set(codes)) != len(codes):
            raise ValueError("output codes must be unique")
        if not self.blocking and any(o.severity == "blocking" for o in self.outputs):
            raise ValueError("severity blocking needs blocking: true")
        return self


class AiServiceConfig(TlsSettings):
    """An external HTTP JSON AI service: POSTed the study's UIDs, answers findings.

    ``deadline_s`` bounds every attempt and back-off together; 5xx, connection errors and
    timeouts are retried (``max_attempts``, back-off from ``retry_initial_s`` doubling up to
    ``retry_max_s``), 4xx are not; a ``blocking`` finding of a service that is not ``blocking``
    is reported as ``warning``.  The bearer token (read from ``bearer_token_file`` on each
    call) goes to ``url`` only: redirects are never followed.
    """

    name: str = Field(pattern=TASK_NAME)
    url: str = Field(max_length=2048)
    bearer_token_file: str | None = None
    deadline_s: float = Field(default=60.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=10)
    retry_initial_s: float = Field(default=0.5, gt=0, le=60)
    retry_max_s: float = Field(default=8.0, gt=0, le=300)
    max_response_bytes: int = Field(default=1 << 20, ge=1024, le=64 << 20)
    max_findings: int = Field(default=100, ge=1, le=10_000)
    series: SeriesSelector = SeriesSelector()
    blocking: bool = False
    # the vendor's free text becomes the finding's message (cleaned, truncated) only when true:
    # it is untrusted free text and may carry PHI; false: the message is code and score
    keep_vendor_messages: bool = False

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return check_http_url(value)

    @model_validator(mode="after")
    def _tls_needs_https(self) -> Self:
        if self.tls_customised() and not self.url.lower().startswith("https://"):
            raise ValueError("tls_* settings need an https:// url")
        return self


class AiTasksConfig(Section):
    """The inbound AI tasks: registry models under contracts, and external services."""

    models: tuple[ModelTaskContract, ...] = ()
    services: tuple[AiServiceConfig, ...] = ()

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        names = [m.name for m in self.models] + [s.name for s in self.services]
        if len(set(names)) != len(names):
            raise ValueError("task names must be unique across models and services")
        return self
