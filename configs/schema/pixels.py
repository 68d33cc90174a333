"""Burned-in pixel PHI policy: what to scan, how to decide what is PHI, how to redact."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from dxai.configs.schema.base import Section

# always: OCR every instance; presence: a cheap text-presence pass on every instance, OCR where
# it flags text (or a structural cue, or corners unlike the series'); sample: OCR
# ``sample_count`` instances per series, the rest only if they found PHI text; skip: none
ScanAction = Literal["always", "presence", "sample", "skip"]
TextMode = Literal["match_phi", "redact_all_text"]

# Text kept under ``redact_all_text``: each regex matches one whole marker, case-insensitive
# (``L``, ``5 cm``, ``TIS 0.4``, ``D 12.0cm``), also where OCR glued markers together
# (``W:400L:40``; see ``dxai.actors.pixels.allow``).  Orientation, technique and scale markers
# only, nothing a name or an identifier could be read as: the unit M (57 M: an age and a sex?) is
# left out.  Dates, times, ages, identifiers and labelled values are PHI by pattern anyway.
DEFAULT_ALLOW = (
    # laterality, views and patient positions
    r"[LR]",
    r"AP|PA|LAT|LLAT|RLAT|OBL|LAO|RAO|LPO|RPO|SUP|INF|ANT|POST|H|F|A|P|UPRIGHT|SUPINE|PORTABLE"
    r"|PRONE|ERECT|DECUB|AXIAL|SAG|COR|TRV|TRANS|LONG|CC|MLO|LCC|RCC|LMLO|RMLO",
    # a value and its unit: 120 kVp, 5 cm, 12.0cm, 5MHz, 30Hz, 19fps, 1.5T, 1.5x, 52%
    r"\d+(\.\d+)?\s*(KVP|KV|MAS|MA|MS|S|CM|MM|MHZ|KHZ|HZ|DB|FPS|BPM|%|DEG|°|T|X)",
    # a technique parameter and its value: kVp 120, W:400, TIS 0.4, MI 1.2, D 12.0cm, FR 30Hz
    r"(KVP|MAS|MA|KV|MS|W|L|WL|WW|C|TIS|TIB|TIC|MI|DR|G|GN|GAIN|FR|D|DEPTH|Z|ZOOM|SE|IM|TR|TE"
    r"|TI|ET|FA|SL|THK|PRF|WF|PWR|FREQ|F)\s*[:=]?\s*-?\d+(\.\d+)?"
    r"\s*(CM|MM|MS|S|HZ|KHZ|MHZ|DB|%|X|DEG|°)?",
    # technique words on their own: index labels, ultrasound modes, measurement names
    r"KVP|MAS|TIS|TIB|TIC|MI|GN|GAIN|DEPTH|ZOOM|THI|HGEN|GEN|RES|PEN|HARM|2D|3D|4D|M-?MODE"
    r"|B-?MODE|CFM|PW|CW|PWR|FREQ|MHZ|HZ|CM|MM|DB|DIST|AREA|VOL|CIRC|MAG",
    # transducers: C5-1, L12-5, 6C1
    r"[CLSPVE][A-Z]?\d{1,2}-\d{1,2}[A-Z]?|\d{1,2}[CLSV]\d{1,2}",
    # frame and image counters (3/24), matrix sizes (512x512), plain numbers
    r"\d{1,4}/\d{1,4}|\d+\s*[X×]\s*\d+",
    r"\d+(\.\d+)?",
    # arrows and marks without a letter or a digit
    r"[-+*<>^~=_|/\\→←↑↓⇒⇐⇧⇩➔➜►◄▶◀▲▼△▽•·]+",
)


def _default_scan() -> dict[str, ScanAction]:
    always = ("US", "SC", "XA", "XC", "OT", "DX", "CR", "RF", "ES", "DOC", "IVUS", "GM", "SM")
    presence = ("CT", "MR", "PT", "NM", "MG")
    skip = ("SR", "PR", "KO", "RTSTRUCT", "RTPLAN", "RTDOSE", "SEG", "REG")
    out: dict[str, ScanAction] = {m: "always" for m in always}
    out.update({m: "presence" for m in presence})
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


# Where burned-in text is the norm and the header rarely holds all of it (a sonographer's
# initials, a referring clinic, a screen's own labels): every text but the allow list is PHI.
REDACT_ALL_MODALITIES = ("US", "SC", "XA", "XC", "ES", "OT", "DOC")
SECONDARY_CAPTURE_SOP_CLASSES = (
    "1.2.840.10008.5.1.4.1.1.7",
    "1.2.840.10008.5.1.4.1.1.7.1",
    "1.2.840.10008.5.1.4.1.1.7.2",
    "1.2.840.10008.5.1.4.1.1.7.3",
    "1.2.840.10008.5.1.4.1.1.7.4",
)


def _default_text_modes() -> dict[str, TextMode]:
    return {m: "redact_all_text" for m in REDACT_ALL_MODALITIES}


def _default_sop_text_modes() -> dict[str, TextMode]:
    return {uid: "redact_all_text" for uid in SECONDARY_CAPTURE_SOP_CLASSES}


class PixelPolicyConfig(Section):
    """Risk-based scanning and redaction of text burned into pixel data."""

    default_scan: ScanAction = "presence"
    scan_modalities: dict[str, ScanAction] = Field(default_factory=_default_scan)
    scan_sop_classes: dict[str, ScanAction] = Field(default_factory=_default_sop_scan)
    default_mode: TextMode = "match_phi"
    mode_modalities: dict[str, TextMode] = Field(default_factory=_default_text_modes)
    mode_sop_classes: dict[str, TextMode] = Field(default_factory=_default_sop_text_modes)
    # mode of an instance whose ORIGINAL header says BurnedInAnnotation YES, before any SOP class
    # or modality rule; None: such instances follow those rules like any other
    burned_in_mode: TextMode | None = "redact_all_text"
    sample_count: int = Field(default=3, ge=1, le=100)
    margin_px: int = Field(default=2, ge=0, le=50)
    verify: bool = True
    verify_min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    # the independent verify (with ``verify``): a second OCR engine reads every OCRed image after
    # the fills; PHI it reads with at least ``second_reader_min_confidence`` holds the instance
    # (reason ``second_reader_phi``).  tesseract: Debian's tesseract-ocr data through tesserocr,
    # from ``tessdata_dir`` (None: TESSDATA_PREFIX, else /usr/share/tesseract-ocr/*/tessdata);
    # the redactor is not built (ConfigError) when it cannot load.  none: off.
    second_reader: Literal["tesseract", "none"] = "tesseract"
    second_reader_min_confidence: float = Field(default=0.6, ge=0.0, le=1.0)
    tessdata_dir: str | None = Field(default=None, min_length=1)
    allow_list: tuple[str, ...] = DEFAULT_ALLOW
    max_ocr_frames: int = Field(default=4, ge=1, le=64)
    det_max_side: int = Field(default=960, ge=320, le=4096)
    # an image whose long side is over 1.25 x det_max_side is read again in overlapping tiles at
    # up to this long side (small print on large radiographs); at most det_max_side: off
    det_tile_max_side: int = Field(default=1920, ge=320, le=8192)
    # ONNX Runtime intra-op threads per OCR session when no inference service is used: 1 where
    # many instances run in parallel (daemon), 2 or more for one instance at a time (CLI).
    ocr_threads: int = Field(default=1, ge=1, le=16)
    # recognitions kept per process, keyed by crop pixels: an overlay repeated on every instance
    # of a series is read once.  0 turns the cache off.
    rec_cache_entries: int = Field(default=4096, ge=0, le=1_000_000)
    # known PHI regions (a CTP DicomPixelAnonymizer script): blanked on every frame, before OCR,
    # of every instance with pixel data whose header matches a rule, scanned or not.  False: off.
    known_regions: bool = True
    # the script: None is the library CTP ships (packaged, dxai.actors data/ctp); else the path of
    # a site's own script, used instead.  Read when the redactor is built (ConfigError on error).
    known_regions_file: str | None = Field(default=None, min_length=1)

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

    def text_mode(self, modality: str, sop_class_uid: str, burned_in: bool = False) -> TextMode:
        """PHI decision mode for an instance: ``burned_in_mode`` when its original header says
        ``BurnedInAnnotation`` YES (``burned_in``), else SOP class rule, modality, default."""
        if burned_in and self.burned_in_mode is not None:
            return self.burned_in_mode
        if sop_class_uid in self.mode_sop_classes:
            return self.mode_sop_classes[sop_class_uid]
        return self.mode_modalities.get(modality.upper(), self.default_mode)
