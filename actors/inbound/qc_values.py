"""Tolerant reads of header values for QC: real scanners' headers vary.

Values may be missing, empty, padded (``"5.000000 "``), multi-valued where one was expected, or
unparseable; every reader here returns ``None`` (or an empty value) instead of raising.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from pydicom.dataset import Dataset

#: words in a SeriesDescription that mark a localizer even without LOCALIZER in ImageType.
LOCALIZER_WORDS = (
    "localizer",
    "localiser",
    "locator",
    "scout",
    "topogram",
    "surview",
    "scanogram",
    "survey",
    "3 plane",
    "3pl loc",
    "tri pilot",
    "aahscout",
)
#: SOP classes whose instances QC does not treat as images to read (no pixel checks).
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
#: modalities whose "images" are not pictures read by a person (labels, dose grids).
NON_PICTURE_MODALITIES = frozenset({"SEG", "RTDOSE", "RTSTRUCT", "RTPLAN", "REG", "SR", "KO"})
_NON_WORD = re.compile(r"[^a-z0-9]+")


def raw(header: Dataset, keyword: str) -> object:
    """The element's value, or None when absent or unreadable."""
    try:
        return header.get(keyword)
    except (ValueError, TypeError, OverflowError, KeyError, AttributeError):
        return None


def _number(value: object) -> float | None:
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    try:
        number = float(str(value).strip())
    except (ValueError, TypeError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def floats(header: Dataset, keyword: str) -> tuple[float, ...]:
    """All numeric values of a (multi-valued) DS/IS/FD element; () when any is not a number."""
    value = raw(header, keyword)
    if value is None or value == "" or value == b"":
        return ()
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace").split("\\")
    elif isinstance(value, str):
        value = value.split("\\")
    items = list(value) if isinstance(value, Iterable) else [value]
    numbers = [_number(v) for v in items]
    return () if any(n is None for n in numbers) else tuple(n for n in numbers if n is not None)


def number(header: Dataset, keyword: str) -> float | None:
    """The first numeric value of an element, None when absent or not a number."""
    values = floats(header, keyword)
    return values[0] if values else None


def integer(header: Dataset, keyword: str) -> int | None:
    """The first value as an int (``"12 "`` and ``"12.0"`` both give 12)."""
    value = number(header, keyword)
    return int(value) if value is not None and value == int(value) else None


def text(header: Dataset, keyword: str) -> str:
    """The value as stripped text ("" when absent); multi-values joined by backslashes."""
    value = raw(header, keyword)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip()
    if isinstance(value, Iterable) and not isinstance(value, str):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


def image_type(header: Dataset) -> tuple[str, ...]:
    """ImageType values, upper case."""
    return tuple(v.strip().upper() for v in text(header, "ImageType").split("\\") if v.strip())


def words(value: str) -> str:
    """``value`` lower case with every run of non-alphanumerics one space, padded by spaces."""
    return f" {_NON_WORD.sub(' ', value.lower()).strip()} "


def has_word(haystack: str, keyword: str) -> bool:
    """Whether ``keyword`` appears as whole words in ``haystack`` (already :func:`words`)."""
    needle = words(keyword)
    return needle.strip() != "" and needle in haystack


def is_localizer(header: Dataset) -> bool:
    """A scout / localizer: ImageType LOCALIZER, or a localizer word in the SeriesDescription."""
    if "LOCALIZER" in image_type(header):
        return True
    description = words(text(header, "SeriesDescription"))
    return any(has_word(description, w) for w in LOCALIZER_WORDS)


def is_image(header: Dataset) -> bool:
    """An instance with pixels to check: Rows and Columns present and positive."""
    rows, cols = integer(header, "Rows"), integer(header, "Columns")
    return bool(rows and cols and rows > 0 and cols > 0)


def is_picture(header: Dataset) -> bool:
    """An image read by a person (not a segmentation, dose grid or 1-bit mask)."""
    modality = text(header, "Modality").upper()
    return (
        is_image(header)
        and modality not in NON_PICTURE_MODALITIES
        and (integer(header, "BitsAllocated") or 8) > 1
    )


def frames(header: Dataset) -> int:
    """NumberOfFrames (1 when absent or unreadable)."""
    value = integer(header, "NumberOfFrames")
    return value if value and value > 0 else 1


def is_secondary_capture(header: Dataset) -> bool:
    """A secondary capture (screenshots, dose screens)."""
    return text(header, "SOPClassUID").startswith(SECONDARY_CAPTURE_PREFIX)
