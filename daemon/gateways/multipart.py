"""multipart/related encoding and decoding for DICOMweb (WADO-RS responses, STOW-RS requests)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence

from dxai.configs.errors import PermanentError

_BOUNDARY = re.compile(r'boundary=(?:"([^"]+)"|([^;\s]+))', re.IGNORECASE)


class MultipartError(PermanentError):
    """A multipart/related body could not be parsed."""

    code = "multipart_invalid"


def boundary_of(content_type: str) -> bytes:
    """The boundary parameter of a multipart Content-Type header."""
    match = _BOUNDARY.search(content_type)
    if match is None:
        raise MultipartError("multipart response without a boundary parameter")
    return (match.group(1) or match.group(2)).encode("latin-1")


def split_multipart(body: bytes, content_type: str) -> list[bytes]:
    """The bodies of the parts of ``body`` (headers dropped), in order."""
    delim = b"\r\n--" + boundary_of(content_type)
    chunks = (b"\r\n" + body).split(delim)
    parts: list[bytes] = []
    for chunk in chunks[1:]:
        if chunk.startswith(b"--"):
            break
        head_end = chunk.find(b"\r\n\r\n")
        if head_end < 0:
            raise MultipartError("multipart part without a header block")
        parts.append(chunk[head_end + 4 :])
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
