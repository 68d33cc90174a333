"""HL7 v2 results over MLLP: send one message, wait for its ACK, retry what may succeed later.

One connection per attempt (python-hl7's asyncio streams, UTF-8).  An ACK whose MSA-2 names our
control id and whose MSA-1 is AA/CA ends the send; AR/CR is a refusal for good
(:class:`Hl7RejectedError`, no retry).  AE/CE, an ACK for another control id, an unreadable
reply, a timeout (connect or ACK) or a refused/reset connection is retried with exponential
backoff (``retry_initial_s`` doubling up to ``retry_max_s``) until ``max_attempts``, then
:class:`Hl7SendError` (retriable: the job may try again later).  Error messages and log lines
carry codes and counts only: never the message, the peer's text or a patient attribute.
"""

from __future__ import annotations

import asyncio
import contextlib

import hl7
import hl7.mllp

from dxai.actors.inbound.oru import AckResult, InvalidAckError, parse_ack
from dxai.configs.errors import (
    ConfigError,
    PermanentError,
    RetriableError,
    ServiceUnavailableError,
)
from dxai.configs.schema.clinical_out import Hl7OutConfig
from dxai.observability.logging import get_logger

__all__ = ["Hl7RejectedError", "Hl7SendError", "control_id_of", "send_hl7"]

log = get_logger(__name__)
ENCODING = "utf-8"
#: Largest ACK read back (an ACK is a few hundred bytes).
MAX_ACK_BYTES = 1_000_000


class Hl7SendError(ServiceUnavailableError):
    """The HL7 peer did not accept the message within ``max_attempts`` (retriable later)."""

    code = "hl7_send_failed"


class Hl7RejectedError(PermanentError):
    """The HL7 peer rejected the message (AR / CR): sending it again would fail the same way."""

    code = "hl7_rejected"


class _AttemptError(RetriableError):
    """One attempt failed in a way a later attempt may not (internal; carries a reason code)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def control_id_of(message: str) -> str:
    """MSH-10 of ``message`` (ER7); :class:`PermanentError` when it is not HL7 or has none."""
    try:
        parsed = hl7.parse(message.replace("\n", "\r").strip())
        control_id = str(parsed.segment("MSH").extract_field(1, 10))
    except (hl7.ParseException, KeyError, IndexError, ValueError) as exc:
        raise PermanentError("outgoing HL7 message has no readable MSH segment") from exc
    if not control_id:
        raise PermanentError("outgoing HL7 message has no control id (MSH-10)")
    return control_id


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(ConnectionError, OSError):
        await writer.wait_closed()


async def _exchange(message: str, config: Hl7OutConfig) -> AckResult:
    """One attempt: connect, send, read one MLLP block, parse it as an ACK."""
    opening = hl7.mllp.open_hl7_connection(
        config.host, config.port, encoding=ENCODING, limit=MAX_ACK_BYTES
    )
    try:
        reader, writer = await asyncio.wait_for(opening, config.connect_timeout_s)
    except TimeoutError as exc:
        raise _AttemptError("connect_timeout") from exc
    except OSError as exc:
        raise _AttemptError("connect_failed") from exc
    try:
        writer.writeblock(message.encode(ENCODING))
        await writer.drain()
        block = await asyncio.wait_for(reader.readblock(), config.ack_timeout_s)
    except TimeoutError as exc:
        raise _AttemptError("ack_timeout") from exc
    except (OSError, asyncio.IncompleteReadError, hl7.mllp.InvalidBlockError, ValueError) as exc:
        raise _AttemptError("ack_unreadable") from exc
    finally:
        await _close(writer)
    try:
        return parse_ack(bytes(block).decode(ENCODING, errors="replace"))
    except InvalidAckError as exc:
        raise _AttemptError("ack_invalid") from exc


async def _attempt(message: str, control_id: str, config: Hl7OutConfig) -> AckResult:
    """One attempt; returns an accepting ACK, raises a rejection or :class:`_AttemptError`."""
    ack = await _exchange(message, config)
    if ack.control_id != control_id:
        raise _AttemptError("ack_control_id_mismatch")
    if ack.accepted:
        return ack
    if ack.rejected:
        raise Hl7RejectedError(f"HL7 peer rejected the message (MSA-1 {ack.code})")
    raise _AttemptError("ack_error")


async def send_hl7(message: str, config: Hl7OutConfig) -> AckResult:
    """Send ``message`` (ER7 text) to ``config.host``:``config.port`` and return the ACK.

    Raises :class:`Hl7RejectedError` on AR/CR, :class:`Hl7SendError` after ``max_attempts``
    failed attempts, :class:`~dxai.configs.errors.ConfigError` without a host.
    """
    if config.host is None:
        raise ConfigError("hl7_out.host: not set; no MLLP destination to send to")
    control_id = control_id_of(message)
    delay_s = config.retry_initial_s
    reason = "none"
    for attempt in range(1, config.max_attempts + 1):
        try:
            return await _attempt(message, control_id, config)
        except _AttemptError as exc:
            reason = exc.reason
        log.warning(
            "hl7 send attempt failed",
            extra={"component": "hl7_out", "reason": reason, "count": attempt},
        )
        if attempt < config.max_attempts:
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, config.retry_max_s)
    raise Hl7SendError(
        f"HL7 message not accepted after {config.max_attempts} attempts (last: {reason})"
    )
