"""A small reader for the items of a sequence that is being removed, straight from its bytes.

The PHI tokens of a removed sequence come from the text values at every depth of its items.
Having pydicom parse the items builds a dataset and an element object per value only to throw
them away; this reader walks the bytes instead and returns the (text, VR) pairs that
:func:`dxai.actors.deid.collect.collect` would take from the parsed items.

It covers the common encodings only: little endian; explicit VR with a known VR other than
``UN``, or implicit VR with public tags whose dictionary VR is known; defined or undefined
lengths for sequences and items; no Specific Character Set inside an item.  Anything else
(or anything malformed) makes it return None, and the caller uses pydicom as before, so the
result never differs from the parsed route.
"""

from __future__ import annotations

import struct

from pydicom.valuerep import EXPLICIT_VR_LENGTH_16, EXPLICIT_VR_LENGTH_32

from dxai.actors.deid.context import CODE_TAGS
from dxai.actors.deid.phi import TEXT_VRS
from dxai.actors.deid.values import bytes_text, dictionary_vr

_ITEM = 0xFFFEE000
_ITEM_END = 0xFFFEE00D
_SEQUENCE_END = 0xFFFEE0DD
_UNDEFINED = 0xFFFFFFFF
_SPECIFIC_CHARACTER_SET = 0x00080005
_HEAD = struct.Struct("<HHI")  # tag and 32-bit length (implicit VR, items, delimiters)
_EXPLICIT = struct.Struct("<HH2sH")  # tag, VR and 16-bit length
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32) - {"UN"}
_SHORT_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_16)

Texts = list[tuple[bytes, str]]


class _UnsupportedError(Exception):
    """The bytes need pydicom (an encoding not covered here, or malformed data)."""


class _Reader:
    """Walks the items of one sequence value; ``texts`` gathers (value bytes, VR) pairs."""

    def __init__(self, data: bytes, implicit: bool) -> None:
        self.data = data
        self.implicit = implicit
        self.texts: Texts = []

    def _head(self, pos: int, end: int) -> tuple[int, str, int, int]:
        """Tag, VR, value length and value position of the element at ``pos``."""
        if pos + 8 > end:
            raise _UnsupportedError
        group, element, length = _HEAD.unpack_from(self.data, pos)
        tag = group << 16 | element
        if self.implicit or group == 0xFFFE:
            if group & 1 and group != 0xFFFE:
                raise _UnsupportedError  # pydicom looks private VRs up by their creator
            return tag, "" if group == 0xFFFE else dictionary_vr(tag), length, pos + 8
        _, _, raw_vr, length = _EXPLICIT.unpack_from(self.data, pos)
        vr = raw_vr.decode("latin-1")
        if vr in _SHORT_VRS:
            return tag, vr, length, pos + 8
        if vr not in _LONG_VRS or pos + 12 > end:
            raise _UnsupportedError
        return tag, vr, _HEAD.unpack_from(self.data, pos + 4)[2], pos + 12

    def elements(self, pos: int, end: int, delimited: bool) -> int:
        """Read an item's elements from ``pos``; the position after the item."""
        while pos < end:
            tag, vr, length, pos = self._head(pos, end)
            if tag == _ITEM_END and delimited:
                return pos
            if vr in ("", "UN") or tag == _SPECIFIC_CHARACTER_SET:
                raise _UnsupportedError
            if length == _UNDEFINED:
                if vr != "SQ":
                    raise _UnsupportedError
                pos = self.items(pos, end, delimited=True)
                continue
            if pos + length > end:
                raise _UnsupportedError
            if vr == "SQ":
                self.items(pos, pos + length, delimited=False)
            elif not (tag >> 16 & 1 or vr == "CS" or tag in CODE_TAGS) and vr in TEXT_VRS:
                self.texts.append((self.data[pos : pos + length], vr))
            pos += length
        if delimited or pos != end:
            raise _UnsupportedError
        return pos

    def items(self, pos: int, end: int, delimited: bool) -> int:
        """Read a sequence's items from ``pos``; the position after the sequence."""
        while pos < end:
            if pos + 8 > end:
                raise _UnsupportedError
            group, element, length = _HEAD.unpack_from(self.data, pos)
            tag, pos = group << 16 | element, pos + 8
            if tag == _SEQUENCE_END and delimited and length == 0:
                return pos
            if tag != _ITEM:
                raise _UnsupportedError
            if length == _UNDEFINED:
                pos = self.elements(pos, end, delimited=True)
            elif pos + length > end:
                raise _UnsupportedError
            else:
                pos = self.elements(pos, pos + length, delimited=False)
        if delimited or pos != end:
            raise _UnsupportedError
        return pos


def sequence_texts(data: bytes, implicit: bool, encodings: list[str]) -> list[tuple[str, str]]:
    """The (text, VR) pairs of every collectable value in a defined-length sequence value.

    Raises ValueError when the bytes need pydicom (see the module description).
    """
    reader = _Reader(data, implicit)
    try:
        reader.items(0, len(data), delimited=False)
    except (_UnsupportedError, struct.error, RecursionError) as exc:
        raise ValueError("sequence needs pydicom") from exc
    return [(bytes_text(value, encodings), vr) for value, vr in reader.texts]
