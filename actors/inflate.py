"""Deflated instances: a bound on what they inflate to, checked before anything parses them.

The Deflated Explicit VR Little Endian transfer syntax compresses a whole dataset, and pydicom
(and pynetdicom, decoding a C-STORE request) inflates it in one call, in memory.  Deflate packs
a run of one byte about a thousand to one: a 1.5 MB file became a 1.5 GB dataset (3.4 GB
resident for ``dxai deid``), and a 10 MB one, sent to the landing zone or served by a hostile
archive, takes a daemon down.  Every reader of instances from outside goes through
:func:`dcmread_bounded` (or :func:`check_deflated` for a DIMSE dataset), which streams the
deflated part through zlib in bounded steps first and refuses an instance whose dataset
inflates to more than :data:`MAX_INFLATED_BYTES` with :class:`InflatedTooLargeError` (an
:class:`~dxai.configs.errors.InvalidDicomError`: the instance fails alone, with that code).
Nothing is kept while checking: memory stays at one step's output.
"""

from __future__ import annotations

import io
import zlib
from contextlib import ExitStack
from pathlib import Path
from typing import Any, BinaryIO

import pydicom
from pydicom.dataset import FileDataset
from pydicom.filereader import _read_file_meta_info, read_preamble
from pydicom.uid import DeflatedExplicitVRLittleEndian

from dxai.configs.errors import InvalidDicomError

# no real deflated instance comes near this (deflate serves structured reports, documents and
# small images); the largest a bounded daemon lets pydicom hold for one
MAX_INFLATED_BYTES = 512 * 1024**2
_STEP_IN = 1024**2
_STEP_OUT = 16 * 1024**2


class InflatedTooLargeError(InvalidDicomError):
    """A deflated dataset inflates to more than the bound (a decompression bomb)."""

    code = "deflated_too_large"


def check_deflated(fp: BinaryIO, limit: int | None = None) -> None:
    """Inflate the rest of ``fp`` (raw deflate, as PS3.5 A.5 writes it) in bounded steps and
    raise :class:`InflatedTooLargeError` past ``limit`` bytes; ``fp``'s position is kept.

    A stream that is not valid deflate is left for the reader to refuse.  ``limit``: default
    :data:`MAX_INFLATED_BYTES`.
    """
    limit = MAX_INFLATED_BYTES if limit is None else limit
    start = fp.tell()
    inflater, total = zlib.decompressobj(-zlib.MAX_WBITS), 0
    try:
        while chunk := fp.read(_STEP_IN):
            while chunk:
                total += len(inflater.decompress(chunk, _STEP_OUT))
                if total > limit:
                    raise InflatedTooLargeError(
                        f"deflated dataset inflates to more than {limit} bytes"
                    )
                chunk = inflater.unconsumed_tail
    except zlib.error:
        return
    finally:
        fp.seek(start)


def check_part10(source: Path | bytes | BinaryIO, limit: int | None = None) -> None:
    """:func:`check_deflated` on the dataset of a Part 10 file (path, bytes or open file) whose
    file meta names the deflated transfer syntax; anything else passes untouched."""
    with ExitStack() as stack:
        if isinstance(source, Path | str):
            fp: BinaryIO = stack.enter_context(Path(source).open("rb"))
        else:
            fp = io.BytesIO(source) if isinstance(source, bytes) else source
        start = fp.tell()
        try:
            read_preamble(fp, True)
            meta = _read_file_meta_info(fp)
        except Exception:  # noqa: BLE001 - not Part 10 (or damaged): the reader says why
            fp.seek(start)
            return
        try:
            if meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian:
                check_deflated(fp, limit)
        finally:
            fp.seek(start)


def dcmread_bounded(source: Path | bytes | BinaryIO, **kwargs: Any) -> FileDataset:
    """``pydicom.dcmread`` (same keywords) of an instance that passed :func:`check_part10`;
    bytes are read from memory."""
    fp = io.BytesIO(source) if isinstance(source, bytes) else source
    check_part10(fp)
    return pydicom.dcmread(fp, **kwargs)
