"""The ``qc:`` section and destination preflight limits, plus the protocol file's models.

Quality control (``dxai.actors.inbound.qc``) checks a received study against the protocol its
descriptions match (``configs/protocols.yaml``, or ``protocols_file``) and for completeness
(missing slices, truncated or undecodable pixels, ...).  Preflight checks it against what a
destination accepts (:class:`PreflightTarget`).  Every finding code and its default severity is
listed in :data:`QC_CODES` / :data:`PREFLIGHT_CODES`; ``severities`` overrides them per code.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydicom.datadict import tag_for_keyword

from dxai.configs.schema.base import Section

#: the same values as ``dxai.actors.inbound.findings.Severity`` (the ground floor imports no room)
Severity = Literal["info", "warning", "blocking"]
Phase = Literal["none", "arterial", "venous", "delayed", "any"]

#: every QC finding code and its default severity: completeness problems that leave a series
#: unreadable block, protocol deviations warn.
QC_CODES: dict[str, Severity] = {
    "qc.empty_study": "blocking",
    "qc.no_protocol": "info",
    "qc.slice_thickness_out_of_range": "warning",
    "qc.kvp_out_of_range": "warning",
    "qc.contrast_phase_mismatch": "warning",
    "qc.too_few_series": "warning",
    "qc.non_contiguous_slices": "warning",
    "qc.missing_instance_number": "blocking",
    "qc.slice_gap": "blocking",
    "qc.missing_at_position": "blocking",
    "qc.duplicate_position": "warning",
    "qc.inconsistent_orientation": "warning",
    "qc.inconsistent_pixel_spacing": "warning",
    "qc.inconsistent_dimensions": "warning",
    "qc.irregular_slice_spacing": "warning",
    "qc.missing_pixel_data": "blocking",
    "qc.truncated_pixel_data": "blocking",
    "qc.undecodable_pixel_data": "blocking",
    "qc.blank_image": "warning",
    "qc.saturated_image": "warning",
}

#: every preflight finding code and its default severity.
PREFLIGHT_CODES: dict[str, Severity] = {
    "preflight.study_too_large": "blocking",
    "preflight.instance_too_large": "blocking",
    "preflight.transcode": "warning",
    "preflight.lossy_not_accepted": "blocking",
    "preflight.transfer_syntax_not_accepted": "blocking",
    "preflight.missing_attribute": "blocking",
}


def _known_codes(value: dict[str, Severity], known: dict[str, Severity]) -> dict[str, Severity]:
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise ValueError(f"unknown finding code(s) {unknown}; known: {sorted(known)}")
    return value


class QcConfig(Section):
    """Inbound quality control: protocol conformance and completeness of a received study."""

    enabled: bool = True
    protocols_file: str | None = Field(
        default=None, description="Protocol definitions (YAML); None: the packaged protocols.yaml"
    )
    pixel_check_max_per_series: int = Field(
        default=16,
        ge=0,
        description="Instances per series decoded (spread over the series) for the blank, "
        "saturated and undecodable checks; the Pixel Data length is checked on every instance.",
    )
    gap_factor: float = Field(
        default=1.5, gt=1.0, description="A step over this many median spacings is a gap."
    )
    irregular_spacing_fraction: float = Field(
        default=0.1, gt=0.0, lt=1.0, description="A step off the median by more is irregular."
    )
    position_tolerance_mm: float = Field(
        default=0.05, gt=0.0, description="Slice positions closer than this are the same."
    )
    orientation_tolerance_deg: float = Field(default=1.0, gt=0.0, le=45.0)
    pixel_spacing_tolerance_mm: float = Field(default=0.001, ge=0.0)
    saturated_fraction: float = Field(
        default=0.5,
        gt=0.0,
        le=1.0,
        description="A grayscale image with this share of its pixels at the top stored value.",
    )
    severities: dict[str, Severity] = Field(
        default_factory=dict, description="Overrides of the default severity per finding code."
    )

    @field_validator("severities")
    @classmethod
    def _codes_known(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return _known_codes(value, QC_CODES)


class PreflightTarget(Section):
    """What one destination accepts: sizes, transfer syntaxes, attributes it requires.

    A transfer syntax not accepted is decompressed to a native syntax the destination accepts
    when ``can_transcode`` (a warning says so) if the source is lossless or native.  Lossy data
    is blocked unless ``allow_lossy_decompression``: a decompressed lossy image reaches the
    receiver in a syntax it reads as original quality, which it did not ask for.
    """

    max_study_bytes: int | None = Field(default=None, gt=0)
    max_instance_bytes: int | None = Field(default=None, gt=0)
    accepted_transfer_syntaxes: tuple[str, ...] = Field(
        default=(), description="Transfer syntax UIDs; empty: any."
    )
    required_attributes: tuple[str, ...] = Field(
        default=(), description="DICOM keywords every instance must carry with a value."
    )
    can_transcode: bool = True
    allow_lossy_decompression: bool = False
    severities: dict[str, Severity] = Field(default_factory=dict)

    @field_validator("required_attributes")
    @classmethod
    def _keywords_known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [k for k in value if tag_for_keyword(k) is None]
        if unknown:
            raise ValueError(f"not DICOM keywords: {unknown}")
        if "PixelData" in value:
            raise ValueError("PixelData is checked by qc, not as a required attribute")
        return value

    @field_validator("accepted_transfer_syntaxes")
    @classmethod
    def _uids(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [v for v in value if not v or not all(p.isdigit() for p in v.split("."))]
        if bad:
            raise ValueError(f"not UIDs: {bad}")
        return value

    @field_validator("severities")
    @classmethod
    def _codes_known(cls, value: dict[str, Severity]) -> dict[str, Severity]:
        return _known_codes(value, PREFLIGHT_CODES)


# --- the protocol file ---------------------------------------------------------------------


class ValueRange(Section):
    """An inclusive range; either end may be open."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> ValueRange:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the range (ends included)."""
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)


class ProtocolMatch(Section):
    """When a protocol applies.  Keywords are matched case-insensitively as whole words in the
    StudyDescription, SeriesDescription, BodyPartExamined and ProtocolName of the study."""

    modalities: tuple[str, ...] = Field(default=(), description="Any of these; empty: any.")
    keywords: tuple[str, ...] = Field(default=(), description="At least one; empty: any.")
    exclude_keywords: tuple[str, ...] = ()
    protocol_names: tuple[str, ...] = Field(
        default=(), description="ProtocolName values that match on their own (case-insensitive)."
    )

    @field_validator("modalities")
    @classmethod
    def _upper(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(v.strip().upper() for v in value)


class ProtocolChecks(Section):
    """What a matched protocol requires of its primary series (original, not localizers)."""

    slice_thickness_mm: ValueRange | None = None
    kvp: ValueRange | None = None
    contrast_phase: Phase = "any"
    min_series: int = Field(default=0, ge=0)
    contiguous_slices: bool = False


class Protocol(Section):
    """One study type: how to recognise it and what it must look like."""

    description: str = ""
    priority: int = 0
    fallback: bool = False
    match: ProtocolMatch = ProtocolMatch()
    checks: ProtocolChecks = ProtocolChecks()


class PhaseKeywords(Section):
    """Words in a SeriesDescription that name its contrast phase (whole words, any case)."""

    none: tuple[str, ...] = ("non contrast", "noncontrast", "non con", "without contrast", "wo")
    arterial: tuple[str, ...] = ("arterial", "art", "cta", "angio", "angiography")
    venous: tuple[str, ...] = ("venous", "portal", "portal venous", "pv", "nephrographic")
    delayed: tuple[str, ...] = ("delayed", "delay", "excretory", "urographic")


class ProtocolFile(Section):
    """The protocol file: phase words and the protocols by name (at most one fallback)."""

    version: Literal[1] = 1
    phases: PhaseKeywords = PhaseKeywords()
    protocols: dict[str, Protocol] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_fallback(self) -> ProtocolFile:
        fallbacks = [name for name, p in self.protocols.items() if p.fallback]
        if len(fallbacks) > 1:
            raise ValueError(f"more than one fallback protocol: {fallbacks}")
        return self
