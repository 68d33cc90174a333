"""Malformed Part 10 files: valid pydicom-written seeds, then byte-level mutations.

Seeds are real files re-written by pydicom with placeholder UIDs of a fixed width, so every case
gets unique Study / Series / SOP Instance UIDs by a same-length byte replacement (the layout does
not move).  A small walker finds where each element's tag, VR, length and value lie (nested
sequence items and encapsulated fragments included); the mutations use those offsets:
truncation, bad length fields, wrong VR codes, deep sequences, huge elements, bad pixel
lengths and geometry, broken encapsulation (item tags, fragment lengths, offset table, RLE
header), random byte flips and, where the target reads files itself, a broken file meta.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

import pydicom
from hypothesis import strategies as st
from pydicom.data import get_testdata_file
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "tests" / "data" / "sample-study" / "0" / "0" / "0.dcm"
#: role digit of each placeholder UID (study, series, SOP instance); the rest is zeros
ROLES = {"StudyInstanceUID": 7, "SeriesInstanceUID": 8, "SOPInstanceUID": 9}
UID_DIGITS = 34  # "2.25." + role digit + 34 digits = 40 characters (even: no padding)
UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
MAX_WALK_DEPTH = 40  # deeper sequences are not followed (their bytes are left alone)
LONG_VRS = frozenset(
    {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}
)
ALL_VRS = (
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FL", b"FD", b"IS", b"LO", b"LT", b"OB",
    b"OD", b"OF", b"OL", b"OV", b"OW", b"PN", b"SH", b"SL", b"SQ", b"SS", b"ST", b"SV", b"TM",
    b"UC", b"UI", b"UL", b"UN", b"UR", b"US", b"UT", b"UV",
)  # fmt: skip
BAD_VRS = (b"\x00\x00", b"ZZ", b"  ", b"ob", b"\xff\xff", b"S\x00")
_CASE = itertools.count(1)
Draw = Callable[[st.SearchStrategy[Any]], Any]


def placeholder(role: int) -> bytes:
    """The seed's placeholder UID for ``role``."""
    return f"2.25.{role}{0:0{UID_DIGITS}d}".encode()


def case_uid(role: int, case: int) -> str:
    """A unique UID of the placeholder's width for ``case``."""
    return f"2.25.{role}{case:0{UID_DIGITS}d}"


# -- seeds -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seed:
    """One valid Part 10 file, with where its dataset starts and how it is encoded."""

    name: str
    data: bytes
    dataset_at: int
    implicit: bool
    encapsulated: bool


def _part10(ds: Dataset) -> bytes:
    """``ds`` with placeholder UIDs, written by pydicom as a Part 10 file."""
    for keyword, role in ROLES.items():
        setattr(ds, keyword, placeholder(role).decode())
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _seed(name: str, ds: Dataset) -> Seed:
    data = _part10(ds)
    meta_len = struct.unpack_from("<I", data, 132 + 8)[0]  # (0002,0000) UL value
    syntax = ds.file_meta.TransferSyntaxUID
    return Seed(name, data, 132 + 12 + meta_len, syntax.is_implicit_VR, syntax.is_encapsulated)


def _testdata(name: str) -> Dataset:
    path = get_testdata_file(name)
    if path is None:
        raise FileNotFoundError(f"pydicom test file {name} is not bundled")
    return pydicom.dcmread(path)


@cache
def seeds() -> tuple[Seed, ...]:
    """The seeds: explicit and implicit VR, native and encapsulated (RLE, JPEG 2000) pixels, a
    plan with nested sequences and no pixels, a synthetic CT with burned-in text."""
    names = {
        "ct": "CT_small.dcm",
        "mr_rle": "MR_small_RLE.dcm",
        "rgb_rle": "SC_rgb_rle.dcm",
        "rtplan": "rtplan.dcm",
        "j2k": "JPEG2000.dcm",
    }
    out = [_seed(key, _testdata(file)) for key, file in names.items()]
    out.append(_seed("burned_in", pydicom.dcmread(SAMPLE)))
    return tuple(out)


def with_case_uids(data: bytes, case: int) -> bytes:
    """``data`` with the placeholder UIDs replaced by ``case``'s (same width)."""
    for role in ROLES.values():
        data = data.replace(placeholder(role), case_uid(role, case).encode())
    return data


def next_case() -> int:
    """A case number unique in this process (and across runs on one machine: time based)."""
    return time.time_ns() // 1000 * 1000 + next(_CASE) % 1000


# -- the walker --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Elem:
    """Where one element (or item / delimiter) of a dataset lies."""

    start: int
    tag: int
    vr_at: int | None  # None: implicit VR or an item
    len_at: int
    len_size: int
    value_at: int
    length: int
    depth: int

    @property
    def end(self) -> int:
        """The offset after its value (defined length only)."""
        return self.value_at + (0 if self.length == UNDEFINED else self.length)


@dataclass
class _Walk:
    data: bytes
    implicit: bool
    out: list[Elem]
    limit: int = 20_000

    def full(self) -> bool:
        return len(self.out) >= self.limit


def _header(w: _Walk, pos: int, depth: int) -> Elem | None:
    """The element header at ``pos``; None past the end."""
    data = w.data
    if pos + 8 > len(data):
        return None
    group, element = struct.unpack_from("<HH", data, pos)
    tag = group << 16 | element
    if group == 0xFFFE or w.implicit:
        length = struct.unpack_from("<I", data, pos + 4)[0]
        return Elem(pos, tag, None, pos + 4, 4, pos + 8, length, depth)
    vr = data[pos + 4 : pos + 6]
    if vr in LONG_VRS:
        if pos + 12 > len(data):
            return None
        length = struct.unpack_from("<I", data, pos + 8)[0]
        return Elem(pos, tag, pos + 4, pos + 8, 4, pos + 12, length, depth)
    length = struct.unpack_from("<H", data, pos + 6)[0]
    return Elem(pos, tag, pos + 4, pos + 6, 2, pos + 8, length, depth)


def _is_sequence(w: _Walk, elem: Elem) -> bool:
    if elem.vr_at is not None:
        return w.data[elem.vr_at : elem.vr_at + 2] == b"SQ"
    try:
        return dictionary_VR(elem.tag) == "SQ"
    except KeyError:
        return elem.length == UNDEFINED and elem.tag != PIXEL_DATA


def _walk(w: _Walk, pos: int, end: int, depth: int, stop_tag: int | None = None) -> int:
    """Record elements from ``pos`` up to ``end`` (or ``stop_tag``); return where it stopped."""
    while pos < end and not w.full():
        elem = _header(w, pos, depth)
        if elem is None:
            return end
        w.out.append(elem)
        if elem.tag == stop_tag:
            return elem.value_at
        if elem.tag == PIXEL_DATA and elem.length == UNDEFINED:
            pos = _items(w, elem.value_at, end, depth + 1, nested=False)
        elif _is_sequence(w, elem) and depth < MAX_WALK_DEPTH:
            stop = end if elem.length == UNDEFINED else min(end, elem.end)
            after = _items(w, elem.value_at, stop, depth + 1, nested=True)
            pos = after if elem.length == UNDEFINED else elem.end
        elif elem.length == UNDEFINED:
            return end  # a sequence too deep to follow: the rest is opaque
        else:
            pos = elem.end
    return pos


def _items(w: _Walk, pos: int, end: int, depth: int, nested: bool) -> int:
    """Items of a sequence (``nested``) or fragments of encapsulated pixel data."""
    while pos < end and not w.full():
        item = _header(w, pos, depth)
        if item is None:
            return end
        w.out.append(item)
        if item.tag == SEQ_END:
            return item.value_at
        if item.tag != ITEM:
            return end  # not well formed: stop here
        if not nested:
            pos = item.end
        elif item.length == UNDEFINED:
            pos = _walk(w, item.value_at, end, depth + 1, stop_tag=ITEM_END)
        else:
            _walk(w, item.value_at, min(end, item.end), depth + 1)
            pos = item.end
    return pos


def walk(data: bytes, start: int, implicit: bool) -> list[Elem]:
    """Every element, item and delimiter of the dataset starting at ``start`` (tolerant: stops
    where the bytes stop making sense)."""
    w = _Walk(data, implicit, [])
    with contextlib.suppress(struct.error):
        _walk(w, start, len(data), 0)
    return w.out


# -- mutations ---------------------------------------------------------------------------------


@dataclass
class Case:
    """A file being mutated and the labels of what was done to it."""

    seed: Seed
    data: bytes
    labels: list[str]
    keep_meta: bool = False

    def elems(self) -> list[Elem]:
        """The current bytes' elements."""
        return walk(self.data, self.seed.dataset_at, self.seed.implicit)


def _put(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _length_bytes(value: int, size: int) -> bytes:
    return struct.pack("<H" if size == 2 else "<I", value & (0xFFFF if size == 2 else UNDEFINED))


def truncate(case: Case, draw: Draw) -> None:
    """Cut the file anywhere, or just inside an element."""
    elems = case.elems()
    if elems and draw(st.booleans()):
        elem = draw(st.sampled_from(elems))
        cut = elem.start + draw(st.integers(0, 16))
    else:
        cut = draw(st.integers(0, max(0, len(case.data) - 1)))
    if case.keep_meta:
        cut = max(cut, case.seed.dataset_at)
    case.data = case.data[:cut]
    case.labels.append("truncate")


def bad_length(case: Case, draw: Draw) -> None:
    """Set a length field to a wrong value: off by one, odd, zero, undefined, huge."""
    elems = case.elems()
    if not elems:
        return
    elem = draw(st.sampled_from(elems))
    full = 0xFFFF if elem.len_size == 2 else UNDEFINED
    length = elem.length
    value = draw(
        st.sampled_from(
            [0, 1, 3, length - 1, length + 1, length + 2, length * 2 + 1, full, full - 1,
             0x7FFFFFFF, 0x80000000, 0x10000]
        )
        | st.integers(0, full)
    )  # fmt: skip
    case.data = _put(case.data, elem.len_at, _length_bytes(value, elem.len_size))
    case.labels.append("bad_length")


def wrong_vr(case: Case, draw: Draw) -> None:
    """Replace an explicit VR code by another one (the length field no longer fits) or junk."""
    elems = [e for e in case.elems() if e.vr_at is not None]
    if not elems:
        return
    elem = draw(st.sampled_from(elems))
    vr = draw(st.sampled_from(ALL_VRS + BAD_VRS))
    assert elem.vr_at is not None
    case.data = _put(case.data, elem.vr_at, vr)
    case.labels.append("wrong_vr")


def _encode(tag: int, vr: bytes, value: bytes, implicit: bool, length: int | None = None) -> bytes:
    """One element; ``length`` overrides the length field (undefined length)."""
    size = len(value) if length is None else length
    head = struct.pack("<HH", tag >> 16, tag & 0xFFFF)
    if implicit:
        return head + struct.pack("<I", size) + value
    if vr in LONG_VRS:
        return head + vr + b"\0\0" + struct.pack("<I", size) + value
    return head + vr + struct.pack("<H", size) + value


def _item(body: bytes, undefined: bool) -> bytes:
    if undefined:
        return struct.pack("<HHI", 0xFFFE, 0xE000, UNDEFINED) + body + _delim(0xE00D)
    return struct.pack("<HHI", 0xFFFE, 0xE000, len(body)) + body


def _delim(element: int) -> bytes:
    return struct.pack("<HHI", 0xFFFE, element, 0)


def nested_sequence(depth: int, undefined: bool, implicit: bool) -> bytes:
    """Content Sequence (0040,A730) nested ``depth`` levels, one item per level."""
    tag = 0x0040A730
    leaf = _encode(0x0040A160, b"UT", b"deep text ", implicit)  # Text Value
    body = leaf
    for _ in range(depth):
        if undefined:
            seq = _encode(tag, b"SQ", _item(body, True) + _delim(0xE0DD), implicit, UNDEFINED)
        else:
            seq = _encode(tag, b"SQ", _item(body, False), implicit)
        body = seq
    return body


def _insert_ordered(case: Case, tag: int, blob: bytes) -> None:
    """Insert ``blob`` (elements of ``tag``) before the first top-level element past ``tag``."""
    top = [e for e in case.elems() if e.depth == 0]
    at = next((e.start for e in top if e.tag > tag), len(case.data))
    case.data = case.data[:at] + blob + case.data[at:]


def deep_sequence(case: Case, draw: Draw) -> None:
    """Insert a sequence nested hundreds to thousands of levels deep."""
    depth = draw(st.sampled_from([16, 200, 1000, 3000, 20_000]))
    undefined = draw(st.booleans())
    _insert_ordered(case, 0x0040A730, nested_sequence(depth, undefined, case.seed.implicit))
    case.labels.append(f"deep_sequence_{depth}")


def wide_sequence(case: Case, draw: Draw) -> None:
    """Insert a sequence of tens of thousands of (empty) items."""
    count = draw(st.sampled_from([1000, 50_000]))
    body = _item(b"", False) * count
    _insert_ordered(case, 0x0040A730, _encode(0x0040A730, b"SQ", body, case.seed.implicit))
    case.labels.append("wide_sequence")


def huge_element(case: Case, draw: Draw) -> None:
    """Insert a large value: a text with PHI-like content, or private binary bytes."""
    size = draw(st.sampled_from([70_000, 1 << 20, 6 << 20]))
    if draw(st.booleans()):
        # Text Value (UT: a 4-byte length in explicit VR), outside any sequence
        tag, vr, value = 0x0040A160, b"UT", (b"DOE^JOHN 1970-01-01 " * (size // 20 + 1))[:size]
    else:
        tag, vr, value = 0x00091010, b"OB", bytes(size)  # a private element
    _insert_ordered(case, tag, _encode(tag, vr, value, case.seed.implicit))
    case.labels.append("huge_element")


_GEOMETRY = {
    0x00280010: "rows",
    0x00280011: "columns",
    0x00280100: "bits_allocated",
    0x00280002: "samples",
    0x00280101: "bits_stored",
    0x00280103: "pixel_representation",
}


def pixel_geometry(case: Case, draw: Draw) -> None:
    """Make the image geometry disagree with the pixel bytes (a US value rewritten)."""
    elems = [e for e in case.elems() if e.tag in _GEOMETRY and e.length == 2]
    if not elems:
        return
    elem = draw(st.sampled_from(elems))
    value = draw(st.sampled_from([0, 1, 3, 7, 12, 33, 255, 4096, 65535]))
    case.data = _put(case.data, elem.value_at, struct.pack("<H", value))
    case.labels.append(f"pixel_{_GEOMETRY[elem.tag]}")


def pixel_length(case: Case, draw: Draw) -> None:
    """Native pixel data made shorter, longer or odd (its length field kept consistent)."""
    elems = [e for e in case.elems() if e.tag == PIXEL_DATA and e.length != UNDEFINED]
    if not elems:
        return
    elem = elems[0]
    value = case.data[elem.value_at : elem.end]
    new = draw(
        st.sampled_from(
            [value[: len(value) // 2], value[:-1], value + b"\0", value + bytes(len(value)), b""]
        )
    )
    head = case.data[: elem.len_at] + _length_bytes(len(new), elem.len_size)
    case.data = head + new + case.data[elem.end :]
    case.labels.append("pixel_length")


def broken_encapsulation(case: Case, draw: Draw) -> None:
    """Break encapsulated pixel data: an item tag, a fragment length, the offset table, the
    sequence delimiter, or a fragment's codec header (RLE segment table, J2K codestream)."""
    elems = case.elems()
    pixel = [e for e in elems if e.tag == PIXEL_DATA and e.length == UNDEFINED]
    if not pixel:
        return
    frags = [e for e in elems if e.tag == ITEM and e.start > pixel[0].start]
    if not frags:
        return
    how = draw(st.sampled_from(["tag", "length", "offsets", "delimiter", "codec", "drop"]))
    frag = draw(st.sampled_from(frags))
    data = case.data
    if how == "tag":
        data = _put(data, frag.start, draw(st.binary(min_size=4, max_size=4)))
    elif how == "length":
        value = draw(st.sampled_from([0, 1, 3, frag.length + 1, UNDEFINED, 0x7FFFFFF0]))
        data = _put(data, frag.len_at, struct.pack("<I", value & UNDEFINED))
    elif how == "offsets":  # the first item is the Basic Offset Table
        table = draw(st.lists(st.integers(0, UNDEFINED), min_size=1, max_size=4))
        body = b"".join(struct.pack("<I", v) for v in table)
        first = frags[0]
        data = data[: first.len_at] + struct.pack("<I", len(body)) + body + data[first.end :]
    elif how == "delimiter":
        ends = [e for e in elems if e.tag == SEQ_END and e.start > pixel[0].start]
        data = data[: ends[0].start] if ends else data
    elif how == "codec" and frag.length >= 16:
        data = _put(data, frag.value_at, draw(st.binary(min_size=16, max_size=16)))
    else:  # drop a fragment (the frame count no longer fits)
        data = data[: frag.start] + data[frag.end :]
    case.data = data
    case.labels.append(f"encapsulation_{how}")


def flip_bytes(case: Case, draw: Draw) -> None:
    """Overwrite a few random bytes of the dataset."""
    lo = min(case.seed.dataset_at, len(case.data) - 1)
    if lo < 0:
        return
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(lo, len(case.data) - 1))
        case.data = _put(case.data, at, bytes([draw(st.integers(0, 255))]))
    case.labels.append("flip_bytes")


_SYNTAXES = (
    "1.2.840.10008.1.2.2",  # explicit VR big endian (the dataset is little endian)
    "1.2.840.10008.1.2.1.99",  # deflated (the dataset is not)
    "1.2.840.10008.1.2.4.50",  # JPEG baseline (the pixels are not)
    "1.2.3.4",  # unknown
    "",
)


def _set_syntax(case: Case, uid: str) -> None:
    """Rewrite (0002,0010) to ``uid``, fixing its length and the meta group length."""
    meta = [e for e in walk(case.data, 132, False) if e.start < case.seed.dataset_at]
    found = [e for e in meta if e.tag == 0x00020010]
    if not found:
        return
    elem, value = found[0], uid.encode()
    value += b"\0" * (len(value) % 2)
    data = case.data[: elem.len_at] + struct.pack("<H", len(value)) + value + case.data[elem.end :]
    group = struct.unpack_from("<I", data, 140)[0] + len(value) - elem.length
    case.data = _put(data, 140, struct.pack("<I", group & UNDEFINED))


def broken_meta(case: Case, draw: Draw) -> None:
    """Break the file meta: transfer syntax, group length, the DICM magic, the preamble."""
    how = draw(st.sampled_from(["syntax", "group_length", "magic", "no_preamble", "no_meta"]))
    if how == "syntax":
        _set_syntax(case, draw(st.sampled_from(_SYNTAXES)))
    elif how == "group_length":
        case.data = _put(case.data, 140, struct.pack("<I", draw(st.integers(0, UNDEFINED))))
    elif how == "magic":
        case.data = _put(case.data, 128, b"DICX")
    elif how == "no_preamble":
        case.data = case.data[128:]
    else:
        case.data = case.data[case.seed.dataset_at :]
    case.labels.append(f"meta_{how}")


DATASET_MUTATIONS: tuple[Callable[[Case, Draw], None], ...] = (
    truncate,
    bad_length,
    wrong_vr,
    deep_sequence,
    wide_sequence,
    huge_element,
    pixel_geometry,
    pixel_length,
    broken_encapsulation,
    flip_bytes,
)


class Malformed:
    """A mutated file; its repr is short (hypothesis prints failing cases; a plain class, as
    hypothesis pretty-prints a dataclass field by field)."""

    __slots__ = ("data", "labels")

    def __init__(self, data: bytes, labels: str) -> None:
        self.data = data
        self.labels = labels

    def __repr__(self) -> str:
        digest = hashlib.sha256(self.data).hexdigest()[:12]
        return f"Malformed({self.labels}, {len(self.data)} bytes, sha256 {digest}...)"


@st.composite
def malformed_dicom(draw: Draw, meta: bool = True, max_steps: int = 3) -> Malformed:
    """A mutated seed with fresh UIDs.  ``meta`` False keeps the file meta intact (a C-STORE
    SCU reads it to send the dataset)."""
    seed = draw(st.sampled_from(seeds()))
    case = Case(seed, with_case_uids(seed.data, next_case()), [seed.name], keep_meta=not meta)
    mutations = DATASET_MUTATIONS + ((broken_meta,) if meta else ())
    for _ in range(draw(st.integers(1, max_steps))):
        draw(st.sampled_from(mutations))(case, draw)
    return Malformed(case.data, "+".join(case.labels))
