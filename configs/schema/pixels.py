"""Burned-in pixel PHI policy: what to scan, how to decide what is PHI, how to redact."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from dxai.configs.schema.base import Section

ScanAction = Literal["always", "sample", "skip"]
TextMode = Literal["match_phi", "redact_all_text"]

DEFAULT_ALLOW = (
    r"[LR]",
    r"AP|PA|LAT|LLAT|RLAT|OBL|LAO|RAO|SUP|INF|ANT|POST|H|F|A|P|UPRIGHT|SUPINE|PORTABLE",
    r"\d+(\.\d+)?\s*(KVP|KV|MAS|MA|MS|S|CM|MM|M|MHZ|HZ|DB|FPS|%|DEG|°)",
    r"(KVP|MAS|MA|KV|W|L|WL|WW|C|TIS|TIB|MI|DR|G|GAIN)\s*[:=]?\s*-?\d+(\.\d+)?",
    r"\d+(\.\d+)?",
)


def _default_scan() -> dict[str, ScanAction]:
    always = ("US", "SC", "XA", "XC", "OT", "DX", "CR", "RF", "ES", "DOC", "IVUS", "GM", "SM")
    sample = ("CT", "MR", "PT", "NM", "MG")
    skip = ("SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "REG")
    out: dict[str, ScanAction] = {m: "always" for m in always}
    out.update({m: "sample" for m in sample})
    out.update({m: "skip" for m in skip})
    return out


def _default_sop_scan() -> dict[str, ScanAction]:
    return {
        "1.2.840.10008.5.1.4.1.1.7": "always",  # Secondary Capture (incl. dose screens)
        "1.2.840.10008.5.1.4.1.1.7.1": "always",
        "1.2.840.10008.5.1.4.1.1.7.2": "always",
        "1.2.840.10008.5.1.4.1.1.7.3": "always",
        "1.2.840.10008.5.1.4.1.1.7.4": "always",
        "1.2.840.10008.5.1.4.1.1.104.1": "skip",  # Encapsulated PDF: no pixel data
    }


class PixelPolicyConfig(Section):
    """Risk-based scanning and redaction of text burned into pixel data."""

    default_scan: ScanAction = "sample"
    scan_modalities: dict[str, ScanAction] = Field(default_factory=_default_scan)
    scan_sop_classes: dict[str, ScanAction] = Field(default_factory=_default_sop_scan)
    default_mode: TextMode = "match_phi"
    mode_modalities: dict[str, TextMode] = Field(default_factory=dict)
    mode_sop_classes: dict[str, TextMode] = Field(default_factory=dict)
    sample_count: int = Field(default=3, ge=1, le=100)
    margin_px: int = Field(default=2, ge=0, le=50)
    verify: bool = True
    verify_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    allow_list: tuple[str, ...] = DEFAULT_ALLOW
    max_ocr_frames: int = Field(default=4, ge=1, le=64)
    det_max_side: int = Field(default=960, ge=320, le=4096)
    # ONNX Runtime intra-op threads per OCR session when no inference service is used: 1 where
    # many instances run in parallel (daemon), 2 or more for one instance at a time (CLI).
    ocr_threads: int = Field(default=1, ge=1, le=16)
    # recognitions kept per process, keyed by crop pixels: an overlay repeated on every instance
    # of a series is read once.  0 turns the cache off.
    rec_cache_entries: int = Field(default=4096, ge=0, le=1_000_000)

    @field_validator("scan_modalities", "mode_modalities")
    @classmethod
    def _upper_modalities(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k != k.upper() or not k for k in value):
            raise ValueError("modality keys must be upper-case DICOM modality codes")
        return value

    @field_validator("allow_list")
    @classmethod
    def _regexes_compile(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for pattern in value:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"allow_list entry {pattern!r} is not a regex: {exc}") from exc
        return value

    def scan_action(self, modality: str, sop_class_uid: str) -> ScanAction:
        """Scan decision for an instance: SOP class rule first, then modality, then default."""
        if sop_class_uid in self.scan_sop_classes:
            return self.scan_sop_classes[sop_class_uid]
        return self.scan_modalities.get(modality.upper(), self.default_scan)

    def text_mode(self, modality: str, sop_class_uid: str) -> TextMode:
        """PHI decision mode for an instance: SOP class rule first, then modality, then default."""
        if sop_class_uid in self.mode_sop_classes:
            return self.mode_sop_classes[sop_class_uid]
        return self.mode_modalities.get(modality.upper(), self.default_mode)
