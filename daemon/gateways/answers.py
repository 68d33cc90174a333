"""Bounded reading of the small answers peers send: QIDO-RS JSON, STOW-RS reports, FHIR bundles.

httpx reads a response that is not streamed whole into memory, however long it is: an archive
that is broken (a proxy serving a log, a query answered with every study it holds) or hostile
could then fill the daemon's memory with one answer and take every job down with it.  Every
such answer is streamed instead and refused past a configured size (the header's
``Content-Length`` is checked first; the decoded bytes count, so a compressed answer cannot
inflate past the bound either).  Instances are read by :mod:`.multipart` under their own bound.
"""

from __future__ import annotations

import httpx

from dxai.configs.errors import PermanentError, ServiceUnavailableError


class AnswerTooLargeError(PermanentError):
    """A peer's answer is larger than its endpoint allows: a DICOMweb answer past
    ``max_answer_bytes``, a C-FIND with more than ``max_find_matches`` matches."""

    code = "answer_too_large"


def _declared(resp: httpx.Response) -> int | None:
    value = resp.headers.get("content-length", "")
    return int(value) if value.isdigit() else None


async def read_answer(resp: httpx.Response, limit: int, what: str) -> bytes:
    """The body of the streamed response ``resp``, decoded; at most ``limit`` bytes.

    Raises :class:`AnswerTooLargeError` (permanent: the same question gets the same answer)
    past ``limit``, and :class:`~dxai.configs.errors.ServiceUnavailableError` when the transfer
    breaks.  The caller closes ``resp``.
    """
    declared = _declared(resp)
    if declared is not None and declared > limit:
        raise AnswerTooLargeError(f"{what}: the answer declares {declared} bytes (limit {limit})")
    body = bytearray()
    try:
        async for chunk in resp.aiter_bytes():
            body += chunk
            if len(body) > limit:
                raise AnswerTooLargeError(f"{what}: the answer is larger than {limit} bytes")
    except httpx.TransportError as exc:
        raise ServiceUnavailableError(f"{what}: {type(exc).__name__}") from exc
    return bytes(body)
