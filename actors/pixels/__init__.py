"""Burned-in PHI in pixel data: OCR (PP-OCRv4), PHI decision, redaction and verification."""

from __future__ import annotations

from dxai.actors.pixels.inference import (
    InferenceTextDetector,
    InferenceTextRecognizer,
    redact_dataset_async,
)
from dxai.actors.pixels.phi import build_terms, phi_values
from dxai.actors.pixels.redactor import PixelRedactor, mark_clean
from dxai.actors.pixels.report import PixelReport, RedactedBox

__all__ = [
    "InferenceTextDetector",
    "InferenceTextRecognizer",
    "PixelRedactor",
    "PixelReport",
    "RedactedBox",
    "build_terms",
    "mark_clean",
    "phi_values",
    "redact_dataset_async",
]
