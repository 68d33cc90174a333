"""Embedded intake pieces without the network: HL7 triggers, webhook, quiet period, landing zone."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pydicom
import pytest
from pydicom.data import get_testdata_file

from dxai.daemon.gateways import FolderSink
from dxai.daemon.intake.dicom_scp import QuietTracker
from dxai.daemon.intake.hl7_trigger import interpret
from dxai.daemon.intake.landing import LandingZone
from dxai.daemon.intake.mllp import MllpListener
from dxai.daemon.intake.webhook import HttpRequest, Webhook, read_request
from dxai.daemon.pipeline import Admission
from dxai.observability.metrics import Sensor

CT = get_testdata_file("CT_small.dcm")
assert CT is not None
RAW = Path(CT).read_bytes()
MSH = "MSH|^~\\&|RIS|HOSP|DXAI|DXAI|20240101||{kind}|{ctrl}|P|2.3"


def _msg(kind: str, ctrl: str, *segments: str) -> str:
    return "\r".join([MSH.format(kind=kind, ctrl=ctrl), "PID|1||X1||Doe^Jane", *segments])


class Recorder:
    def __init__(self, answer: Admission = "accepted") -> None:
        self.calls: list[tuple[bytes, str | None, str]] = []
        self.answer: Admission = answer

    async def __call__(self, raw: bytes, traceparent: str | None, origin: str) -> Admission:
        self.calls.append((raw, traceparent, origin))
        return self.answer


def test_orm_with_zds_is_a_trigger() -> None:
    out = interpret(_msg("ORM^O01", "C1", "ZDS|1.2.840.1^RIS^Application^DICOM"))
    assert (out.ack_code, out.study_uid, out.job_id) == ("AA", "1.2.840.1", "hl7-C1")
    assert "MSA|AA|C1" in out.ack


def test_omi_with_ipc_is_a_trigger() -> None:
    out = interpret(_msg("OMI^O23", "C2", "IPC|ACC1|REQ1|1.2.3.4"))
    assert (out.ack_code, out.study_uid) == ("AA", "1.2.3.4")


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (_msg("ORM^O01", "C3"), "AE"),
        (_msg("ORM^O01", "C4", "ZDS|not-a-uid"), "AE"),
        (_msg("ORU^R01", "C5"), "AR"),
        ("garbage", "AR"),
        ("", "AR"),
    ],
)
def test_bad_orders_are_nakked(text: str, code: str) -> None:
    out = interpret(text)
    assert out.ack_code == code and out.study_uid is None
    assert f"MSA|{code}" in out.ack


def test_adt_is_acknowledged_without_job() -> None:
    out = interpret(_msg("ADT^A01", "C6").replace("\r", "\n"))
    assert (out.ack_code, out.study_uid) == ("AA", None)


async def test_mllp_handle_submits_order_and_acks() -> None:
    submit = Recorder()
    listener = MllpListener(submit, Sensor(), {"kind": "dicomweb"})
    ack = await listener.handle(_msg("ORM^O01", "C7", "ZDS|1.2.5").encode())
    assert "MSA|AA|C7" in ack
    event = json.loads(submit.calls[0][0])
    assert (event["study_uid"], event["exchange_job_id"]) == ("1.2.5", "hl7-C7")
    submit.answer = "dead_letter"
    assert "MSA|AE|C8" in await listener.handle(_msg("ORM^O01", "C8", "ZDS|1.2.5").encode())


async def _request(raw: bytes) -> HttpRequest:
    reader = asyncio.StreamReader()
    reader.feed_data(raw)
    reader.feed_eof()
    return await read_request(reader)


async def test_webhook_parses_and_routes() -> None:
    submit = Recorder()
    hook = Webhook(submit, Sensor())
    body = b'{"a": 1}'
    head = f"POST /events HTTP/1.1\r\nContent-Length: {len(body)}\r\ntraceparent: tp\r\n\r\n"
    req = await _request(head.encode() + body)
    assert (req.method, req.path, req.body) == ("POST", "/events", body)
    assert await hook.route(req) == (202, {"status": "accepted"})
    assert submit.calls == [(body, "tp", "http")]
    assert (await hook.route(HttpRequest("GET", "/events")))[0] == 405
    assert (await hook.route(HttpRequest("GET", "/healthz")))[0] == 200
    submit.answer = "dead_letter"
    assert (await hook.route(req))[0] == 400


async def test_quiet_tracker_fires_once_after_last_touch() -> None:
    fired: list[tuple[str, float]] = []
    done = asyncio.Event()

    def complete(uid: str) -> None:
        fired.append((uid, time.monotonic()))
        done.set()

    tracker = QuietTracker(0.2, complete)
    started = time.monotonic()
    for _ in range(3):  # arrivals closer together than the quiet period
        tracker.touch("1.2.3")
        await asyncio.sleep(0.1)
    await asyncio.wait_for(done.wait(), 5)
    assert [uid for uid, _ in fired] == ["1.2.3"]
    assert fired[0][1] - started >= 0.4 and tracker.waiting == 0


async def _fired_within(fired: list[str], uid: str, limit_s: float) -> float:
    """Seconds until ``uid`` completed (polled), failing past ``limit_s``."""
    started = time.monotonic()
    while uid not in fired:
        assert time.monotonic() - started < limit_s, f"{uid} not complete after {limit_s} s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_quiet_tracker_waits_for_the_sending_association() -> None:
    """A pause longer than the quiet period inside one association does not complete the
    study; the association's end does (its quiet period over), as does the open limit."""
    fired: list[str] = []
    tracker = QuietTracker(0.1, fired.append, open_max_s=0.8)
    tracker.touch("1.1", association=7)
    await asyncio.sleep(0.3)  # three quiet periods pass while association 7 stays open
    assert fired == [] and tracker.waiting == 1
    tracker.association_ended(7)
    tracker.association_ended(7)  # released, then connection closed: one completion
    assert fired == ["1.1"] and tracker.waiting == 0
    tracker.touch("1.2", association=8)  # never released: the open limit completes it
    waited = await _fired_within(fired, "1.2", 5.0)
    assert waited >= 0.7 and fired == ["1.1", "1.2"]


async def test_quiet_tracker_association_moving_on_completes_the_earlier_study() -> None:
    fired: list[str] = []
    tracker = QuietTracker(0.1, fired.append, open_max_s=30.0)
    tracker.touch("2.1", association=1)
    tracker.touch("2.2", association=1)  # the same association sends the next study
    assert await _fired_within(fired, "2.1", 5.0) < 5.0
    assert "2.2" not in fired  # still sent by the open association 1
    tracker.touch("2.3", association=2)
    tracker.association_ended(2)  # ended inside the quiet period: completes after it
    await _fired_within(fired, "2.3", 5.0)
    tracker.association_ended(1)
    await _fired_within(fired, "2.2", 5.0)
    assert fired == ["2.1", "2.3", "2.2"]


def test_landing_zone_seal_and_recover(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path)
    zone.write("1.2.3", "1.2.3.4", RAW)
    zone.write("1.2.9", "1.2.9.4", RAW)
    assert zone.pending() == ["1.2.3", "1.2.9"]
    assert zone.seal("1.2.3", "job-a", b"{}")
    assert not zone.seal("1.2.3", "job-b", b"{}")
    assert (zone.batch_path("job-a") / "1.2.3.4.dcm").read_bytes() == RAW
    (zone.batches / "orphan.json").write_bytes(b"{}")
    assert zone.sealed_events() == [b"{}"] and not (zone.batches / "orphan.json").exists()
    assert zone.pending() == ["1.2.9"]
    with pytest.raises(ValueError):
        zone.write("../x", "1.2", RAW)


async def test_folder_sink_keeps_one_file_per_instance(tmp_path: Path) -> None:
    sink = FolderSink(tmp_path)
    report = await sink.store([RAW, RAW, b"not dicom"])
    assert (report.stored, len(report.failed_uids)) == (2, 1)
    ds = pydicom.dcmread(CT)
    files = list(tmp_path.rglob("*.dcm"))
    assert [f.name for f in files] == [f"{ds.SOPInstanceUID}.dcm"]
