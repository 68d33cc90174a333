"""Dummy values consistent with each VR, and helpers to read element text cheaply."""

from __future__ import annotations

from functools import cache
from typing import Any

from pydicom.charset import decode_bytes
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

DUMMY_TEXT = "ANONYMIZED"
_ESC = 0x1B  # starts an ISO 2022 escape sequence (a character set switch)
_DUMMIES: dict[str, Any] = {
    "AE": "ANONYMIZED",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "PN": "ANONYMOUS",
    "UR": "urn:dxai:anonymized",
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x00\x00",
    "FL": 0.0,
    "FD": 0.0,
    "SL": 0,
    "SS": 0,
    "SV": 0,
    "UL": 0,
    "US": 0,
    "UV": 0,
    "AT": 0,
}
NUMERIC_VRS = frozenset(
    {"FL", "FD", "SL", "SS", "SV", "UL", "US", "UV", "AT", "OD", "OF", "OL", "OV", "OW"}
)
BINARY_VRS = frozenset({"OB", "UN"})


def dummy_value(vr: str) -> Any:
    """A non-empty dummy value for ``vr`` (``D`` action on non-special attributes)."""
    return _DUMMIES.get(vr, DUMMY_TEXT)


@cache
def dictionary_vr(tag: int) -> str:
    """The (first) dictionary VR of a public ``tag``; ``UN`` when the tag is unknown."""
    try:
        return str(dictionary_VR(tag)).split(" or ")[0]
    except KeyError:
        return "UN"


def vr_of(elem: RawDataElement | DataElement) -> str:
    """The VR of a raw or converted element (a public ``UN`` or missing VR: the dictionary's)."""
    vr = elem.VR
    if vr and (vr != "UN" or elem.tag >> 16 & 1):
        return str(vr)
    return dictionary_vr(int(elem.tag))


def elements_of(ds: Dataset) -> list[tuple[BaseTag, RawDataElement | DataElement]]:
    """``(tag, ds.get_item(tag))`` for every element of ``ds``, in the order of ``ds.keys()``.

    One pass over the dataset's element dictionary instead of a ``get_item`` call per tag (whose
    tag normalisation costs more than the lookup); a deferred-read element (raw, with no value)
    still goes through ``get_item``, which reads it.
    """
    out: list[tuple[BaseTag, RawDataElement | DataElement]] = []
    for tag, elem in list(ds._dict.items()):
        if isinstance(elem, RawDataElement) and elem.value is None:
            item = ds.get_item(tag)
            if not isinstance(item, RawDataElement | DataElement):
                continue
            elem = item
        out.append((tag, elem))
    return out


def element_vr(ds: Dataset, tag: BaseTag) -> str:
    """The VR of ``tag`` in ``ds`` without converting a raw element."""
    elem = ds.get_item(tag)
    return dictionary_vr(int(tag)) if elem is None else vr_of(elem)


def encodings_of(ds: Dataset) -> list[str]:
    """The Python codecs of ``ds``'s SpecificCharacterSet (defaults to ASCII)."""
    encodings = getattr(ds, "_character_set", None)
    if isinstance(encodings, str):
        return [encodings]
    if encodings:
        return list(encodings)
    return ["iso8859"]


def raw_text(elem: RawDataElement | DataElement, encodings: list[str]) -> str:
    """The text of a raw or converted element, decoded in the dataset's character sets."""
    if isinstance(elem, RawDataElement):
        data = elem.value
        if not data:
            return ""
        if encodings and _ESC not in data:  # decode_bytes's own shortcut, without the call
            try:
                return str(data.decode(encodings[0]))
            except (UnicodeError, LookupError):
                pass  # decode_bytes warns, falls back or raises as configured
        return decode_bytes(bytes(data), encodings, set()) if encodings else data.decode("latin-1")
    return value_text(elem.value)


def bytes_text(data: bytes, encodings: list[str]) -> str:
    """:func:`text_of` for a value's raw bytes: decoded in ``encodings``, else as Latin-1."""
    if not data:
        return ""
    if encodings and _ESC not in data:  # decode_bytes's own shortcut, without the call
        try:
            return data.decode(encodings[0])
        except (UnicodeError, LookupError):
            pass
    try:
        return decode_bytes(data, encodings, set()) if encodings else data.decode("latin-1")
    except (ValueError, LookupError, TypeError):
        return data.decode("latin-1", "replace")


def text_of(elem: RawDataElement | DataElement, encodings: list[str]) -> str:
    """Like :func:`raw_text`, but never raises: undecodable values are read as Latin-1."""
    value = elem.value
    try:
        return raw_text(elem, encodings) if value else ""
    except (ValueError, LookupError, TypeError):
        return value.decode("latin-1", "replace") if isinstance(value, bytes) else str(value)


def value_text(value: Any) -> str:
    """A converted element value as text (multi-values joined with a backslash)."""
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(value_text(v) for v in value)
    if isinstance(value, Sequence):
        return ""
    return str(value)
