"""Part 10 encoding of a de-identified dataset, with a fast path for the common elements.

Elements that de-identification left alone are still raw (their bytes as read), and pydicom's
writer spends most of its time passing each element through several layers of Python.  For
the common case (little endian, implicit or explicit VR, not deflated, character set and
encoding unchanged since reading) :func:`encode` writes itself: raw elements (tag, VR, length
and the original bytes, as ``pydicom.filewriter.write_data_element`` writes them), new plain
string values (padded as pydicom's ``write_string``/``write_text`` pad them), single plain
ASCII person names, single US/SS/UL/SL integers, OB bytes, and sequences whose items qualify
the same way (items as read, or items built in memory without ambiguous VRs, such as the
marking codes).  Every other element (pixel data, other numbers, multi-valued or non-ASCII
person names, text that is not plain ASCII or is in a character set other than ISO_IR
6/100/192, values too long for a 16-bit length, buffered values) goes through pydicom's own
``write_data_element``,
and anything unusual falls back to ``Dataset.save_as`` for the whole file.  The bytes are
always the ones ``save_as(..., enforce_file_format=True)`` writes (the tests check this, file
by file).
"""

from __future__ import annotations

import copy
import io
import struct
from copy import deepcopy
from operator import itemgetter
from typing import NamedTuple

from pydicom.charset import convert_encodings, default_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset, validate_file_meta
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element, write_file_meta_info
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag, tag_in_exception
from pydicom.uid import UID, DeflatedExplicitVRLittleEndian
from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, PersonName

from dxai.actors.deid.values import elements_of

_PIXEL_DATA = 0x7FE00010
_GROUP_LENGTH = 0x00020000
_UNDEFINED = 0xFFFFFFFF
_LONG_VRS = frozenset(str(vr) for vr in EXPLICIT_VR_LENGTH_32)
# Written by pydicom's write_string (Latin-1): plain values only (no date/time objects).
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DT", "TM", "UI"})
# Written by pydicom's write_text in the dataset's character set.
_TEXT_VRS = frozenset({"LO", "LT", "SH", "ST", "UC", "UT"})
_ASCII_CHARSETS = frozenset({"iso8859", "latin_1", "UTF8"})  # ASCII text encodes as ASCII
_TAG = struct.Struct("<HH")
_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")
_ITEM = _TAG.pack(0xFFFE, 0xE000)
_ITEM_END = _TAG.pack(0xFFFE, 0xE00D)
_SEQUENCE_END = _TAG.pack(0xFFFE, 0xE0DD)
_FIRST = itemgetter(0)
_GROUP_LENGTH_HEAD = _TAG.pack(0x0002, 0x0000) + b"UL" + _U16.pack(4)
_NUMBER_FORMATS = {
    "US": struct.Struct("<H"),
    "SS": struct.Struct("<h"),
    "UL": struct.Struct("<L"),
    "SL": struct.Struct("<l"),
}


def _value_text(value: object) -> str | None:
    """A str or multi-valued str element value joined as pydicom's writers join it."""
    if isinstance(value, str):
        return value
    if isinstance(value, MultiValue | list | tuple) and all(isinstance(v, str) for v in value):
        return "\\".join(value)
    return None


def _new_value(elem: DataElement, ascii_text: bool) -> bytes | None:
    """The encoded value of a new string element, or None when pydicom must encode it.

    Covers the string VRs that pydicom writes with ``write_string`` (Latin-1, padded with a
    space, or NUL for UI) and, when ``ascii_text`` says the character set encodes ASCII as
    ASCII, the text VRs whose value is plain ASCII (``write_text`` then gives the same bytes).
    """
    vr = elem.VR
    text = _value_text(elem.value) if vr in _STRING_VRS or vr in _TEXT_VRS else None
    if text is None or (vr in _TEXT_VRS and not (ascii_text and text.isascii())):
        return None
    if len(text) % 2:
        text += "\x00" if vr == "UI" else " "
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return None


def _number(elem: DataElement) -> bytes | None:
    """A single integer (or empty) value as ``write_numbers`` packs it, else None."""
    value = elem.value
    if value is None or value == "":
        return b""
    if type(value) is not int:
        return None
    try:
        return _NUMBER_FORMATS[elem.VR].pack(value)
    except struct.error:
        return None  # out of range: pydicom reports it


def _person_name(value: object, ascii_text: bool) -> bytes | None:
    """A single plain-ASCII person name as ``write_PN`` encodes it, else None.

    Without ``=`` there is one component group, which ``PersonName.encode`` writes as its text
    when the character set encodes ASCII as ASCII; padded with a space to an even length.
    """
    if not ascii_text or not isinstance(value, PersonName):
        return None
    text = str(value)
    if not text.isascii() or "=" in text:
        return None
    return (text + " " if len(text) % 2 else text).encode("ascii")


def _header(tag: int, vr: str | None, length: int, implicit: bool) -> bytes | None:
    """Tag, VR and length as pydicom writes them; None when pydicom must write the element."""
    head = _TAG.pack(tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + _U32.pack(length)
    if not vr or len(vr) != 2:
        return None
    if vr in _LONG_VRS:
        return head + vr.encode(default_encoding) + b"\x00\x00" + _U32.pack(length)
    if (
        length > 0xFFFF or length == _UNDEFINED
    ):  # pydicom rewrites the VR as UN (with a warning): leave it to it
        return None
    return head + vr.encode(default_encoding) + _U16.pack(length)


class _Context(NamedTuple):
    implicit: bool
    encodings: list[str]  # Python codec names, as pydicom's writer passes them to items
    ascii_text: bool  # the character set writes ASCII text as ASCII


def _context(implicit: bool, encodings: object) -> _Context:
    codecs = convert_encodings(encodings or default_encoding)  # type: ignore[arg-type]
    return _Context(implicit, codecs, len(codecs) == 1 and codecs[0] in _ASCII_CHARSETS)


def _new_item(item: Dataset) -> bool:
    """True for an item built in memory that pydicom writes element by element as it is.

    pydicom only corrects ambiguous VRs (``US or SS`` and the like) in such an item first.
    """
    return item.original_encoding == (None, None) and all(
        isinstance(elem, DataElement) and " or " not in elem.VR for _, elem in elements_of(item)
    )


def _items(elem: DataElement, ctx: _Context) -> bytes | None:
    """A sequence's items as ``write_sequence`` writes them, or None (pydicom must)."""
    parts = []
    for item in elem.value:
        if not isinstance(item, Dataset) or not (
            _unchanged_encoding(item, ctx.implicit) or _new_item(item)
        ):
            return None  # pydicom re-encodes such an item element by element
        body = DicomBytesIO()
        body.is_implicit_VR, body.is_little_endian = ctx.implicit, True
        _write_elements(body, item, item.get("SpecificCharacterSet", ctx.encodings))
        data = body.getvalue()
        if getattr(item, "is_undefined_length_sequence_item", False):
            parts += [_ITEM, _U32.pack(_UNDEFINED), data, _ITEM_END, _U32.pack(0)]
        else:
            parts += [_ITEM, _U32.pack(len(data)), data]
    return b"".join(parts)


def _fast_bytes(elem: DataElement | RawDataElement, ctx: _Context) -> bytes | None:
    """The whole encoded element when it can be written here, else None."""
    undefined = False
    if isinstance(elem, RawDataElement):
        value = elem.value
        if elem.length == _UNDEFINED or not isinstance(value, bytes):
            return None
    elif elem.is_buffered:
        return None
    elif elem.VR == "SQ":
        undefined = elem.is_undefined_length
        value = _items(elem, ctx)
    elif elem.is_undefined_length:
        return None
    elif elem.VR in _NUMBER_FORMATS:
        value = _number(elem)
    elif elem.VR == "PN":
        value = _person_name(elem.value, ctx.ascii_text)
    elif elem.VR == "OB" and type(elem.value) is bytes:  # as write_OBvalue pads it
        value = elem.value + b"\x00" if len(elem.value) % 2 else elem.value
    else:
        value = _new_value(elem, ctx.ascii_text)
    if value is None:
        return None
    length = _UNDEFINED if undefined else len(value)
    head = _header(int(elem.tag), elem.VR, length, ctx.implicit)
    if head is None:
        return None
    return head + value + (_SEQUENCE_END + _U32.pack(0) if undefined else b"")


def _write_elements(fp: DicomBytesIO, ds: Dataset, encodings: object, skip: int = -1) -> None:
    """Every element of ``ds`` in tag order (simple ones inline), as ``write_dataset`` does."""
    ctx = _context(fp.is_implicit_VR, encodings)
    # Plain int tags: BaseTag's comparisons are Python methods, far slower in a sort.
    for tag, elem in sorted([(int(tag), elem) for tag, elem in elements_of(ds)], key=_FIRST):
        if tag == skip or (tag & 0xFFFF == 0 and tag >> 16 > 6):
            continue  # retired group length: pydicom does not write it either
        data = None if tag == _PIXEL_DATA else _fast_bytes(elem, ctx)
        if data is None:
            with tag_in_exception(BaseTag(tag)):
                write_data_element(fp, elem, encodings)  # type: ignore[arg-type]
        else:
            fp.write(data)


def _unchanged_encoding(ds: Dataset, implicit: bool) -> bool:
    """True when pydicom would write ``ds`` without first converting every element."""
    return ds.original_encoding == (implicit, True) and (
        ds.original_character_set == ds._character_set
    )


def _fast_syntax(ds: Dataset) -> UID | None:
    """The transfer syntax when the fast path applies to ``ds``, else None."""
    meta = getattr(ds, "file_meta", None)
    tsyntax = meta.get("TransferSyntaxUID") if isinstance(meta, FileMetaDataset) else None
    if not isinstance(tsyntax, UID) or tsyntax.is_private or not tsyntax.is_transfer_syntax:
        return None
    if not tsyntax.is_little_endian or tsyntax == DeflatedExplicitVRLittleEndian:
        return None
    if not _unchanged_encoding(ds, tsyntax.is_implicit_VR):
        return None  # pydicom re-encodes every element in this case
    preamble = getattr(ds, "preamble", None)
    if preamble and len(preamble) != 128:
        return None
    if any(int(tag) >> 16 in (0, 2) for tag in list(ds.keys())):
        return None  # pydicom refuses these: let it raise
    return tsyntax


def _copy_meta(meta: FileMetaDataset) -> FileMetaDataset:
    """A copy of ``meta`` that writing may change (far cheaper than ``deepcopy``)."""
    out = FileMetaDataset()
    # Straight into the element dictionary (the elements were checked when they were added);
    # raw elements are immutable tuples, converted ones are copied: writing may change them.
    out._dict = {
        tag: copy.copy(elem) if isinstance(elem, DataElement) else elem
        for tag, elem in elements_of(meta)
    }
    out.set_original_encoding(False, True, meta.original_character_set)
    return out


def _write_meta(fp: DicomBytesIO, meta: FileMetaDataset) -> None:
    """``write_file_meta_info(fp, meta, enforce_standard=True)`` with raw elements inline.

    ``meta`` has been validated (with ``enforce_standard``) by the caller.
    """
    length = meta.get_item(_GROUP_LENGTH)
    if length is not None and length.VR != "UL":
        write_file_meta_info(fp, meta, enforce_standard=True)
        return
    body = DicomBytesIO()  # the File Meta is always Explicit VR Little Endian
    body.is_implicit_VR, body.is_little_endian = False, True
    _write_elements(body, meta, default_encoding, skip=_GROUP_LENGTH)
    # (0002,0000) UL, as write_data_element writes it (explicit VR, 16-bit length 4)
    fp.write(_GROUP_LENGTH_HEAD + _U32.pack(body.tell()) + body.getvalue())


def _write_header(fp: DicomBytesIO, ds: Dataset) -> None:
    """Preamble, prefix and File Meta as ``dcmwrite(enforce_file_format=True)`` writes them."""
    original: FileMetaDataset = ds.file_meta
    fast = _unchanged_encoding(original, False)
    meta = _copy_meta(original) if fast else deepcopy(original)
    for meta_keyword, keyword in (
        ("MediaStorageSOPClassUID", "SOPClassUID"),
        ("MediaStorageSOPInstanceUID", "SOPInstanceUID"),
    ):
        in_meta, in_ds = meta.get(meta_keyword, None), ds.get(keyword, None)
        if in_meta is None or (in_ds and in_ds != in_meta):
            setattr(meta, meta_keyword, in_ds)
    validate_file_meta(meta, enforce_standard=True)
    fp.write(getattr(ds, "preamble", None) or b"\x00" * 128)
    fp.write(b"DICM")
    if fast:
        _write_meta(fp, meta)
    else:
        write_file_meta_info(fp, meta, enforce_standard=True)


def encode(ds: Dataset) -> bytes:
    """The Part 10 file ``ds.save_as(..., enforce_file_format=True)`` would write."""
    tsyntax = _fast_syntax(ds)
    if tsyntax is None:
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    if _PIXEL_DATA in ds:
        ds[_PIXEL_DATA].is_undefined_length = tsyntax.is_compressed  # as dcmwrite does
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = tsyntax.is_implicit_VR, True
    _write_header(fp, ds)
    _write_elements(fp, ds, ds.get("SpecificCharacterSet", default_encoding))
    return fp.getvalue()
