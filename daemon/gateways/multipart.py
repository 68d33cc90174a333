"""multipart/related encoding and decoding for DICOMweb (WADO-RS responses, STOW-RS requests).

Both directions stream: :class:`MultipartParser` takes a response body chunk by chunk and hands
out each part as soon as its closing delimiter arrives, so it holds at most one part (plus one
chunk and a delimiter's length) whatever the series size; :class:`MultipartBody` produces a
request body part by part, reading a part held on disk only while it is being sent.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import anyio

from dxai.configs.errors import PermanentError

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)
_HEADER_END = b"\r\n\r\n"
_MAX_HEADER_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024


class MultipartError(PermanentError):
    """A multipart/related body could not be parsed."""

    code = "multipart_invalid"


class MultipartPartTooLargeError(MultipartError):
    """A part grew past the largest instance the peer's endpoint allows (``max_instance_bytes``):
    a broken or hostile peer streaming without end would otherwise fill the memory."""

    code = "instance_too_large"


class MultipartTruncatedError(MultipartError):
    """A multipart/related body ended before its closing delimiter (parts may be missing)."""

    code = "multipart_truncated"


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type header."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise MultipartError("multipart response without a boundary parameter")
    return (match.group(1) or match.group(2)).encode("latin-1")


class MultipartParser:
    """Incremental multipart/related parser: :meth:`feed` chunks, get whole part bodies back.

    The body is read as if preceded by CRLF, so a delimiter is always ``CRLF--boundary``; the
    preamble before the first delimiter and the epilogue after the closing one are ignored, part
    headers are dropped.  Memory: the bytes of the part being received plus the last chunk;
    ``max_part_bytes`` bounds a part (:class:`MultipartPartTooLargeError` past it).
    """

    def __init__(self, content_type: str, max_part_bytes: int | None = None) -> None:
        self._delim = b"\r\n--" + boundary_of(content_type)
        self._max_part = max_part_bytes
        self._buf = bytearray(b"\r\n")
        self._state = "preamble"  # preamble | delimiter | headers | body | done
        self._scan_from = 0

    @property
    def buffered(self) -> int:
        """How many bytes the parser holds now (for memory bounds)."""
        return len(self._buf)

    @property
    def done(self) -> bool:
        """True once the closing delimiter has been read."""
        return self._state == "done"

    def feed(self, chunk: bytes) -> list[bytes]:
        """Add ``chunk``; the part bodies completed by it, in order."""
        if self._state == "done":
            return []  # epilogue
        self._buf += chunk
        parts: list[bytes] = []
        while self._step(parts):
            pass
        if self._max_part is not None and self._state == "body" and self.buffered > self._max_part:
            raise MultipartPartTooLargeError(f"a part is larger than {self._max_part} bytes")
        return parts

    def close(self) -> None:
        """Raise :class:`MultipartTruncatedError` unless the closing delimiter was read."""
        if self._state != "done":
            raise MultipartTruncatedError("multipart body ended before its closing delimiter")

    def _find_delimiter(self) -> int:
        """Index of the next delimiter in the buffer, or -1 (remembers how far it looked)."""
        at = self._buf.find(self._delim, self._scan_from)
        if at < 0:
            self._scan_from = max(0, len(self._buf) - len(self._delim) + 1)
        return at

    def _step(self, parts: list[bytes]) -> bool:
        """Advance the state machine by one step; False when it needs more bytes."""
        if self._state in ("preamble", "body"):
            at = self._find_delimiter()
            if at < 0:
                if self._state == "preamble":  # drop what cannot start a delimiter
                    del self._buf[: self._scan_from]
                    self._scan_from = 0
                return False
            if self._state == "body":
                parts.append(bytes(memoryview(self._buf)[:at]))
            # a fresh buffer of the (short) rest: the part's bytes are released at once
            self._buf = self._buf[at + len(self._delim) :]
            self._state, self._scan_from = "delimiter", 0
            return True
        if self._state == "delimiter":
            return self._after_delimiter()
        if self._state == "headers":
            return self._after_headers()
        return False

    def _after_delimiter(self) -> bool:
        """After a delimiter: ``--`` closes the body, anything else opens a part's headers."""
        if len(self._buf) < 2:
            return False
        if self._buf.startswith(b"--"):
            self._state = "done"
            self._buf.clear()
            return False
        self._state = "headers"
        return True

    def _after_headers(self) -> bool:
        """Skip the rest of the delimiter line and the part's header block (up to CRLFCRLF)."""
        end = self._buf.find(_HEADER_END)
        if end < 0:
            if len(self._buf) > _MAX_HEADER_BYTES:
                raise MultipartError("multipart part header block too long")
            return False
        del self._buf[: end + len(_HEADER_END)]
        self._state, self._scan_from = "body", 0
        return True


def split_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The bodies of the parts of a whole ``body`` (headers dropped), in order."""
    parser = MultipartParser(content_type)
    parts = parser.feed(body)
    parser.close()
    return parts


def build_multipart(
    parts: Sequence[bytes], part_type: str = "application/dicom"
) -> tuple[bytes, str]:
    """A multipart/related body of ``parts`` and its Content-Type header value."""
    boundary = secrets.token_hex(16)
    out = bytearray()
    for part in parts:
        out += f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode("ascii")
        out += part
        out += b"\r\n"
    out += f"--{boundary}--\r\n".encode("ascii")
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return bytes(out), content_type


def part_sizes(parts: Sequence[bytes | Path]) -> list[int]:
    """The length of each part: a file's size on disk (blocking: ``stat``)."""
    return [part.stat().st_size if isinstance(part, Path) else len(part) for part in parts]


def stow_pieces(sizes: Sequence[int], max_parts: int, max_bytes: int) -> list[range]:
    """Consecutive index ranges of at most ``max_parts`` parts and ``max_bytes`` bytes each.

    A part larger than ``max_bytes`` goes alone; every index is in exactly one range.
    """
    pieces: list[range] = []
    start, total = 0, 0
    for index, size in enumerate(sizes):
        full = index - start >= max_parts or (index > start and total + size > max_bytes)
        if full:
            pieces.append(range(start, index))
            start, total = index, 0
        total += size
    if start < len(sizes):
        pieces.append(range(start, len(sizes)))
    return pieces


class MultipartBody:
    """A streamed multipart/related request body of parts in memory (bytes) or on disk (Path).

    ``sizes`` are the parts' lengths (a file's size when the body was planned); the exact
    ``length`` is known up front, so the request carries a Content-Length (no chunked upload).
    A file is read in 1 MiB blocks only while it is sent; one that changed size raises.
    """

    def __init__(
        self,
        parts: Sequence[bytes | Path],
        sizes: Sequence[int],
        part_type: str = "application/dicom",
    ) -> None:
        boundary = secrets.token_hex(16)
        self.parts, self.sizes = parts, sizes
        self.content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
        self._head = f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode("ascii")
        self._tail = f"--{boundary}--\r\n".encode("ascii")
        self.length = sum(len(self._head) + size + 2 for size in sizes) + len(self._tail)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part, size in zip(self.parts, self.sizes, strict=True):
            yield self._head
            if isinstance(part, Path):
                async for block in _read_file(part, size):
                    yield block
            else:
                yield part
            yield b"\r\n"
        yield self._tail


async def _read_file(path: Path, size: int) -> AsyncIterator[bytes]:
    """``path``'s bytes in blocks; raise unless it holds exactly ``size`` bytes."""
    sent = 0
    async with await anyio.open_file(path, "rb") as handle:
        while block := await handle.read(_READ_BYTES):
            sent += len(block)
            if sent > size:
                break
            yield block
    if sent != size:
        raise PermanentError(f"staged file {path.name} changed size while being sent")
