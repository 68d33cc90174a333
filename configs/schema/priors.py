"""The ``priors:`` section: find a patient's earlier studies in an archive and rank them.

The archive is a configured DICOMweb *source* (``sources.<archive>``, or ``source_dicomweb`` as
``default``).  Candidates found by QIDO-RS are matched to the current patient with a weighted
score of name, birth date, patient ID (+ issuer) and sex; those at or above ``min_match_score``
are ranked by that score, then by relevance (same modality, same body region, recency).
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import Field, field_validator, model_validator

from dxai.configs.schema.base import Section

_KEYWORD_RE = re.compile(r"^[a-z0-9]+( [a-z0-9]+)*$")
_REGION_RE = re.compile(r"^[a-z0-9_]{1,32}$")

_DEFAULT_REGIONS: dict[str, tuple[str, ...]] = {
    "head": (
        "head",
        "brain",
        "skull",
        "cranium",
        "cranial",
        "orbit",
        "orbits",
        "sinus",
        "sinuses",
        "iac",
    ),
    "neck": ("neck", "thyroid", "larynx", "pharynx", "carotid", "carotids"),
    "spine": ("spine", "cspine", "tspine", "lspine", "lumbar", "sacrum", "vertebra"),
    "chest": (
        "chest",
        "thorax",
        "thoracic",
        "lung",
        "lungs",
        "pulmonary",
        "heart",
        "cardiac",
        "coronary",
        "rib",
        "ribs",
    ),
    "abdomen": ("abdomen", "abdominal", "abd", "liver", "pancreas", "kidney", "kidneys", "renal"),
    "pelvis": ("pelvis", "pelvic", "hip", "hips", "bladder", "prostate", "uterus"),
    "breast": ("breast", "breasts", "mamma", "mammo", "mammography"),
    "upper_limb": ("shoulder", "humerus", "elbow", "forearm", "wrist", "hand", "finger"),
    "lower_limb": ("femur", "thigh", "knee", "leg", "tibia", "ankle", "foot", "toe"),
}


def default_body_regions() -> dict[str, str]:
    """The packaged keyword -> body region map (``brain`` -> ``head``, ``lung`` -> ``chest``)."""
    return {word: region for region, words in _DEFAULT_REGIONS.items() for word in words}


def normalise_keyword(text: str) -> str:
    """Lower case ASCII words separated by one space (diacritics and punctuation dropped)."""
    folded = unicodedata.normalize("NFKD", text.casefold())
    ascii_only = "".join(c for c in folded if not unicodedata.combining(c))
    return " ".join(re.sub(r"[^a-z0-9]+", " ", ascii_only).split())


class PriorsConfig(Section):
    """Prior studies of the patient: where to search, how to match, how to rank."""

    enabled: bool = True
    archive: str = Field(
        default="default",
        min_length=1,
        max_length=64,
        description="Name of the configured DICOMweb source to search (sources.<name>).",
    )
    name_weight: float = Field(default=0.35, ge=0, description="Share of the name in the score.")
    birth_date_weight: float = Field(default=0.35, ge=0)
    patient_id_weight: float = Field(default=0.25, ge=0)
    sex_weight: float = Field(default=0.05, ge=0)
    unknown_part_score: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="What a part missing on either side (no birth date, no ID) scores.",
    )
    swapped_birth_date_score: float = Field(
        default=0.85, ge=0, le=1, description="Birth date with day and month swapped."
    )
    min_match_score: float = Field(
        default=0.8, ge=0, le=1, description="Candidates below this are another patient."
    )
    modality_weight: float = Field(default=0.5, ge=0, description="Relevance: same modality.")
    region_weight: float = Field(default=0.3, ge=0, description="Relevance: same body region.")
    recency_weight: float = Field(default=0.15, ge=0, description="Relevance: how recent.")
    max_priors: int = Field(default=5, ge=1, le=1000)
    max_results_per_query: int = Field(
        default=100, ge=1, le=10_000, description="QIDO-RS 'limit' of each candidate query."
    )
    lookback_days: int = Field(default=3650, ge=1, le=100 * 366)
    retrieve: bool = Field(default=False, description="Also fetch the ranked priors' instances.")
    body_regions: dict[str, str] = Field(default_factory=default_body_regions)

    @field_validator("body_regions")
    @classmethod
    def _regions_sane(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for keyword, region in value.items():
            key = normalise_keyword(keyword)
            if not _KEYWORD_RE.match(key):
                raise ValueError("body_regions: a keyword needs a letter or a digit")
            if not _REGION_RE.match(region):
                raise ValueError("body_regions: a region is 1-32 of a-z, 0-9, _")
            out[key] = region
        return out

    @model_validator(mode="after")
    def _weights_sane(self) -> PriorsConfig:
        parts = (self.name_weight, self.birth_date_weight, self.patient_id_weight)
        if sum(parts) + self.sex_weight <= 0:
            raise ValueError("the match weights must not all be 0")
        return self
