"""De-identification configuration: named profiles built from PS3.15 Annex E options."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dxai.configs.schema.base import Section
from dxai.configs.schema.pixels import PixelPolicyConfig

DeidOption = Literal[
    "retain_safe_private",
    "retain_uids",
    "retain_device_identity",
    "retain_institution_identity",
    "retain_patient_characteristics",
    "retain_longitudinal_full_dates",
    "retain_longitudinal_modified_dates",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
]

PixelMode = Literal["never", "auto", "always"]


class DeidProfile(Section):
    """A named de-identification profile: the Basic Profile plus a set of options."""

    description: str = ""
    options: tuple[DeidOption, ...] = ()
    keep_tags: tuple[str, ...] = Field(
        default=(), description="Extra attribute keywords kept as-is (site policy)."
    )
    clean_encapsulated_documents: bool = Field(
        default=False,
        description=(
            "Encapsulated Document (0042,0011) is D in PS3.15 Table E.1-1: false replaces it "
            "with a dummy of its kind (a one-page PDF reading ANONYMIZED for a PDF). True "
            "reads its text instead and writes it back cleaned like free text (header PHI in "
            "any spelling, phone numbers, addresses, dates, names after titles): a PDF as a "
            "new text-only PDF (no images, metadata, attachments or annotations survive), "
            "text/plain as UTF-8 text. A PDF whose text cannot be read in full (encrypted, "
            "malformed, scanned, over 500 pages or 64 MiB) and every other kind (CDA XML, "
            "STL, OBJ, MTL) still get the dummy."
        ),
    )

    @model_validator(mode="after")
    def _dates_exclusive(self) -> DeidProfile:
        both = {"retain_longitudinal_full_dates", "retain_longitudinal_modified_dates"}
        if both.issubset(self.options):
            raise ValueError("the two longitudinal date options exclude each other")
        return self


def _default_profiles() -> dict[str, DeidProfile]:
    return {
        "basic": DeidProfile(description="PS3.15 Basic Application Level Confidentiality Profile"),
        "hipaa_safe_harbor": DeidProfile(
            description="Basic profile with descriptors cleaned (HIPAA Safe Harbor intent)",
            options=("clean_descriptors", "clean_structured_content", "clean_graphics"),
            clean_encapsulated_documents=True,
        ),
        "research_longitudinal": DeidProfile(
            description="Research: shifted dates keep intervals, patient characteristics kept",
            options=(
                "retain_longitudinal_modified_dates",
                "retain_patient_characteristics",
                "retain_safe_private",
                "clean_descriptors",
                "clean_structured_content",
                "clean_graphics",
            ),
            clean_encapsulated_documents=True,
        ),
        "teleradiology": DeidProfile(
            description="What a receiving radiologist needs: real dates, characteristics, device",
            options=(
                "retain_longitudinal_full_dates",
                "retain_patient_characteristics",
                "retain_device_identity",
                "retain_safe_private",
                "clean_descriptors",
                "clean_structured_content",
                "clean_graphics",
            ),
            clean_encapsulated_documents=True,
        ),
    }


class DeidConfig(Section):
    """Header and pixel de-identification settings."""

    profile: str = "basic"
    profiles: dict[str, DeidProfile] = Field(default_factory=_default_profiles)
    key_file: str | None = Field(
        default=None, description="Secret key file; generated under data_dir when absent."
    )
    pixels: PixelMode = "never"
    reidentification_map: bool = False
    date_shift_max_days: int = Field(default=365, ge=1, le=36500)
    pixel_policy: PixelPolicyConfig = Field(default_factory=PixelPolicyConfig)

    @model_validator(mode="after")
    def _profile_exists(self) -> DeidConfig:
        if self.profile not in self.profiles:
            raise ValueError(f"profile {self.profile!r} is not one of {sorted(self.profiles)}")
        return self
