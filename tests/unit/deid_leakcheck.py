"""An independent PHI leak check for de-identification tests (shares no code with dxai).

It serialises the output (Part 10 bytes, read back by pydicom), takes every text value at any
depth (decoded by pydicom in the dataset's character sets; OB/OW/UN bytes as Latin-1 and
UTF-8; an encapsulated PDF's text through pypdf directly), and searches each value, squashed
to lower-case letters and digits with accents dropped and ``ł ß ø æ œ đ þ`` transliterated, for
the squashed forms of every planted PHI string (also with ``ä ö ü`` typed ``ae oe ue``).
Squashing removes punctuation and spaces, so ``Muller-Ludenscheidt``, ``MULLER LUDENSCHEIDT``
and ``müller^lüdenscheidt`` are all the same string to it.  UIDs are left out (they are checked
by the verify pass against the original UIDs).
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName
from pypdf import PdfReader

_TRANSLIT = {"ł": "l", "ß": "ss", "ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "þ": "th"}
_GERMAN = {"ä": "ae", "ö": "oe", "ü": "ue", "ø": "oe"}
_SKIP_VRS = {"UI", "SQ", "US", "SS", "UL", "SL", "FL", "FD", "AT", "OF", "OD", "OL", "UV", "SV"}
_SKIP_TAGS = {0x7FE00010}
MIN_FORM = 4
MIN_WIDE_FORM = 2  # two ideographs are a name (山田)


def squash(text: str) -> str:
    """Lower-case letters and digits only, accents dropped, ``ł ß ø æ ...`` transliterated."""
    lowered = "".join(_TRANSLIT.get(ch, ch) for ch in text.lower())
    return "".join(ch for ch in unicodedata.normalize("NFKD", lowered) if ch.isalnum())


def planted_forms(value: str) -> set[str]:
    """The squashed forms a planted PHI string may take in the output."""
    german = "".join(_GERMAN.get(ch, ch) for ch in value.lower())
    forms = {squash(value), squash(german)}
    return {f for f in forms if len(f) >= (MIN_FORM if f.isascii() else MIN_WIDE_FORM)}


def _value_texts(value: object) -> list[str]:
    if isinstance(value, bytes | bytearray):
        data = bytes(value)
        return [data.decode("latin-1"), data.decode("utf-8", "ignore")]
    if isinstance(value, MultiValue | list | tuple):
        return [text for v in value for text in _value_texts(v)]
    if isinstance(value, PersonName | str):
        return [str(value)]
    return []


def _pdf_text(data: bytes) -> str:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() or "" for page in reader.pages)


def output_texts(ds: Dataset) -> list[str]:
    """Every text value of ``ds`` after a write and read (all depths, File Meta included)."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    back = dcmread(io.BytesIO(buffer.getvalue()))
    texts: list[str] = []
    for source in (back.file_meta, back):
        for elem in source.iterall():
            if elem.VR in _SKIP_VRS or elem.tag in _SKIP_TAGS or isinstance(elem.value, Sequence):
                continue
            texts.extend(_value_texts(elem.value))
            if elem.tag == 0x00420011 and bytes(elem.value).startswith(b"%PDF"):
                texts.append(_pdf_text(bytes(elem.value)))
    return texts


def leaks(ds: Dataset, planted: Iterable[str]) -> set[str]:
    """The planted PHI strings that some text value of ``ds`` still holds (in any spelling)."""
    squashed = [squash(text) for text in output_texts(ds)]
    return {
        value
        for value in planted
        if any(form in text for form in planted_forms(value) for text in squashed)
    }
