"""Base model shared by every configuration section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A strict, immutable configuration section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)
