"""HL7 MLLP listener (``asyncio.start_server``): orders with a study UID become jobs.

Framing: ``0x0B`` message ``0x1C 0x0D``.  Each message is answered with an ACK (``MSA|AA``) or a
NAK (``MSA|AE`` application error, ``MSA|AR`` rejected) carrying the control id of MSH-10.
An ORM^O01 / OMI^O23 with a Study Instance UID (ZDS-1 or IPC-3) submits a job whose source is the
one configured for the listener (source archive or landing zone); ADT^A0x is acknowledged.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread

from dxai.configs.errors import DxaiError
from dxai.daemon.intake.hl7_trigger import Hl7Outcome, build_ack, interpret
from dxai.daemon.intake.submit import Submit
from dxai.daemon.intake.tcp import TcpListener, close_quietly
from dxai.observability.logging import get_logger
from dxai.observability.metrics import Sensor

log = get_logger(__name__)
START, END = b"\x0b", b"\x1c\x0d"
MAX_MESSAGE_BYTES = 1_000_000
IDLE_TIMEOUT_S = 300.0


def frame(message: str) -> bytes:
    """MLLP-frame one HL7 message."""
    return START + message.encode("utf-8") + END


class MllpListener(TcpListener):
    """Answers every framed message; submits a job for each order that names a study."""

    component = "mllp"
    read_limit_bytes = MAX_MESSAGE_BYTES

    def __init__(
        self,
        submit: Submit,
        sensor: Sensor,
        source: dict[str, Any],
        event_type: str = "study_scheduled_for_exchange",
        on_adt: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.submit = submit
        self.sensor = sensor
        self.source = source
        self.event_type = event_type  # study_received when the inbound workflow is on
        self.on_adt = on_adt  # the inbound prior prefetch (ADT^A04 / A01)
        super().__init__()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    block = await asyncio.wait_for(reader.readuntil(END), IDLE_TIMEOUT_S)
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                    break
                start = block.find(START)
                payload = block[start + 1 if start >= 0 else 0 : -len(END)]
                writer.write(frame(await self.handle(payload)))
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            await close_quietly(writer)

    async def handle(self, payload: bytes) -> str:
        """The ACK/NAK text for one unframed message (submitting its job when it is an order)."""
        raw = payload.decode("utf-8", errors="replace")
        outcome = await anyio.to_thread.run_sync(interpret, raw)
        if outcome.study_uid is None or outcome.job_id is None:
            self.sensor.count("events_consumed", {"source": "mllp", "outcome": "answered"})
            log.info("hl7 message answered", extra={"status": outcome.ack_code})
            if outcome.text == "adt" and self.on_adt is not None:
                await self.on_adt(raw)  # starts the prefetch; the ACK does not wait for it
            return outcome.ack
        return await self._trigger(raw, outcome)

    async def _trigger(self, raw: str, outcome: Hl7Outcome) -> str:
        event = {
            "event_type": self.event_type,
            "study_uid": outcome.study_uid,
            "destination": "default",
            "exchange_job_id": outcome.job_id,
            "source": self.source,
            # the order itself: its referring physician and clinical history (triage)
            "hl7": raw[:MAX_MESSAGE_BYTES],
        }
        try:
            admission = await self.submit(json.dumps(event).encode(), None, "mllp")
        except DxaiError as exc:
            return await self._nak(raw, exc.code)
        if admission == "dead_letter":
            return await self._nak(raw, "invalid_event")
        log.info("hl7 order admitted", extra={"status": admission})
        return outcome.ack

    async def _nak(self, raw: str, reason: str) -> str:
        def build() -> str:
            import hl7

            text = raw.replace("\r\n", "\r").replace("\n", "\r").strip("\r")
            return build_ack(hl7.parse(text), "AE", reason)

        self.sensor.count("errors", {"component": "mllp", "error_code": "nak"})
        return await anyio.to_thread.run_sync(build)
