"""send_hl7 against a real MLLP server (python-hl7's asyncio server) on an ephemeral port.

Each test starts its own server on 127.0.0.1:0; the server records what it received and answers
with the ACK codes the test scripts (AA, AE then AA, AR, a wrong control id, or nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import hl7
import hl7.mllp
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dxai.actors.inbound.findings import Finding, report_of
from dxai.actors.inbound.oru import build_oru
from dxai.configs.errors import ConfigError
from dxai.configs.schema.clinical_out import Hl7OutConfig
from dxai.daemon.gateways.hl7_out import Hl7RejectedError, Hl7SendError, send_hl7

pytestmark = pytest.mark.integration
HOST = "127.0.0.1"


@dataclass
class ScriptedServer:
    """Answers the n-th message with ``codes[n]`` (the last code repeats; None: no answer)."""

    codes: Sequence[str | None]
    wrong_control_id_first: bool = False
    received: list[Any] = field(default_factory=list)
    port: int = 0

    async def handle(self, reader: Any, writer: Any) -> None:
        """Serve one connection until the client closes it."""
        try:
            while True:
                try:
                    msg = await reader.readmessage()
                except asyncio.IncompleteReadError:
                    break
                self.received.append(msg)
                await self._answer(msg, writer, len(self.received) - 1)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, msg: Any, writer: Any, index: int) -> None:
        code = self.codes[min(index, len(self.codes) - 1)]
        if code is None:
            return
        ack = msg.create_ack(code, message_id=f"ACK-{index}", application="RIS", facility="H")
        if self.wrong_control_id_first and index == 0:
            ack.segment("MSA").assign_field("SOMEONE-ELSE", 2)
        writer.writemessage(ack)
        await writer.drain()


@contextlib.asynccontextmanager
async def serving(script: ScriptedServer) -> AsyncIterator[ScriptedServer]:
    """Run ``script`` on an ephemeral port of its own."""
    server = await hl7.mllp.start_hl7_server(script.handle, HOST, 0, encoding="utf-8")
    script.port = server.sockets[0].getsockname()[1]
    try:
        yield script
    finally:
        server.close()
        await server.wait_closed()


def _config(port: int, **overrides: Any) -> Hl7OutConfig:
    values: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "max_attempts": 3,
        "retry_initial_s": 0.01,
        "retry_max_s": 0.05,
        "ack_timeout_s": 5.0,
        "connect_timeout_s": 2.0,
    }
    values.update(overrides)
    return Hl7OutConfig(**values)


def _message(control_id: str, study_uid: str, sr_uids: tuple[str, str] | None = None) -> str:
    header = Dataset()
    header.PatientName, header.PatientID = "MÜLLER^ZOË", "MLLP-1"
    header.PatientBirthDate, header.PatientSex = "19900101", "F"
    header.AccessionNumber, header.StudyInstanceUID = "ACC-MLLP", study_uid
    finding = Finding("qc.slice_gap", "warning", "gap 5 mm | 2 slices", "qc", value=5.0, unit="mm")
    return build_oru(
        header,
        priority="urgent",
        reports=[report_of("qc", [finding])],
        sr_study_uid=study_uid,
        sr_series_uid=(sr_uids or (generate_uid(), generate_uid()))[0],
        sr_sop_uid=(sr_uids or (generate_uid(), generate_uid()))[1],
        summary="one finding\nreview advised",
        config=Hl7OutConfig(),
        control_id=control_id,
        now=datetime.now(UTC),
    )


async def test_oru_is_received_and_acknowledged() -> None:
    study_uid, sr_uids = generate_uid(), (generate_uid(), generate_uid())
    async with serving(ScriptedServer(["AA"])) as server:
        ack = await send_hl7(_message("CTRL-AA", study_uid, sr_uids), _config(server.port))
    assert (ack.code, ack.control_id, ack.accepted) == ("AA", "CTRL-AA", True)
    (msg,) = server.received
    assert msg["MSH.F9.R1.C2"] == "R01" and msg["MSH.F10"] == "CTRL-AA"
    assert (msg["PID.F3.R1.C1"], msg["PID.F5.R1.C1"], msg["PID.F5.R1.C2"]) == (
        "MLLP-1",
        "MÜLLER",
        "ZOË",
    )
    assert msg["OBR.F5"] == "A" and msg["ZDS.F1.R1.C1"] == study_uid
    by_type: dict[str, Any] = {}
    for seg in msg.segments("OBX"):
        by_type.setdefault(seg.extract_field(1, 3, 1, 1), seg)
    assert by_type["qc"].extract_field(1, 5, 1, 2) == "gap 5 mm | 2 slices"
    pointer = by_type["sr"].extract_field(1, 5, 1, 1)
    assert pointer == f"studies/{study_uid}/series/{sr_uids[0]}/instances/{sr_uids[1]}"


async def test_application_error_is_retried_until_accepted() -> None:
    async with serving(ScriptedServer(["AE", "AA"])) as server:
        ack = await send_hl7(_message("CTRL-AE", generate_uid()), _config(server.port))
    assert ack.code == "AA" and ack.control_id == "CTRL-AE"
    assert [m["MSH.F10"] for m in server.received] == ["CTRL-AE", "CTRL-AE"]


async def test_ack_for_another_control_id_is_not_taken() -> None:
    script = ScriptedServer(["AA"], wrong_control_id_first=True)
    async with serving(script) as server:
        ack = await send_hl7(_message("CTRL-ID", generate_uid()), _config(server.port))
    assert ack.control_id == "CTRL-ID" and len(server.received) == 2


async def test_reject_is_not_retried() -> None:
    async with serving(ScriptedServer(["AR", "AA"])) as server:
        with pytest.raises(Hl7RejectedError) as caught:
            await send_hl7(_message("CTRL-AR", generate_uid()), _config(server.port))
    assert len(server.received) == 1
    assert not caught.value.retriable and "AR" in str(caught.value)


async def test_missing_ack_times_out_and_fails_retriable() -> None:
    async with serving(ScriptedServer([None])) as server:
        with pytest.raises(Hl7SendError) as caught:
            config = _config(server.port, max_attempts=2, ack_timeout_s=0.3)
            await send_hl7(_message("CTRL-TO", generate_uid()), config)
    assert len(server.received) == 2
    assert caught.value.retriable and "ack_timeout" in str(caught.value)


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


async def test_closed_port_fails_retriable_after_max_attempts() -> None:
    message = _message("CTRL-CLOSED", generate_uid())
    with pytest.raises(Hl7SendError) as caught:
        await send_hl7(message, _config(_closed_port(), max_attempts=3))
    text = str(caught.value)
    assert caught.value.retriable and "3 attempts" in text and "connect_failed" in text
    assert "MLLP-1" not in text and "MÜLLER" not in text and "ACC-MLLP" not in text


async def test_without_host_there_is_nothing_to_send_to() -> None:
    with pytest.raises(ConfigError):
        await send_hl7(_message("CTRL-NOHOST", generate_uid()), Hl7OutConfig())
