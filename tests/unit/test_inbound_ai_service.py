"""External AI services: a local fake vendor (http.server in a thread) answers the gateway."""

from __future__ import annotations

import json
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from inbound_helpers import make_ct_series, make_mr_series, make_scout, study_view

from dxai.actors.inbound.study import StudyView
from dxai.configs.schema.ai_tasks import AiServiceConfig
from dxai.daemon.gateways.ai_service import (
    MESSAGE_MAX_CHARS,
    AiServiceRequest,
    ai_service_request,
    call_ai_service,
    clean_text,
)

TOKEN = "vendor-token-" + uuid.uuid4().hex


@dataclass
class Reply:
    """What the fake vendor answers to one POST."""

    status: int = 200
    body: Any = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    hold: bool = False  # wait until the test ends before answering (a slow vendor)


@dataclass
class Seen:
    path: str
    headers: dict[str, str]
    body: bytes


class Vendor:
    """The fake vendor: per path, a list of replies used in turn (the last one repeats)."""

    def __init__(self) -> None:
        self.plans: dict[str, list[Reply]] = {}
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.port = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def plan(self, *replies: Reply) -> str:
        path = f"/ai/{uuid.uuid4().hex}"
        self.plans[path] = list(replies)
        return path

    def hits(self, path: str) -> list[Seen]:
        with self.lock:
            return [s for s in self.seen if s.path == path]

    def next_reply(self, seen: Seen) -> Reply:
        with self.lock:
            self.seen.append(seen)
            replies = self.plans.get(seen.path, [Reply(404, {"error": "no such path"})])
            return replies.pop(0) if len(replies) > 1 else replies[0]


def handler_for(vendor: Vendor) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            seen = Seen(self.path, dict(self.headers.items()), self.rfile.read(length))
            reply = vendor.next_reply(seen)
            if reply.hold:
                vendor.release.wait(10)
            data = reply.raw if reply.raw is not None else json.dumps(reply.body).encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for key, value in reply.headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    fake = Vendor()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(fake))
    server.daemon_threads = True
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        fake.release.set()
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def token_file(tmp_path: Path) -> Path:
    path = tmp_path / "token"
    path.write_text(TOKEN + "\n", encoding="utf-8")
    return path


def service(url: str, token_file: Path | None = None, **overrides: Any) -> AiServiceConfig:
    body: dict[str, Any] = {
        "name": "ai_vendor",
        "url": url,
        "bearer_token_file": str(token_file) if token_file else None,
        "deadline_s": 10.0,
        "max_attempts": 3,
        "retry_initial_s": 0.01,
        "series": {"modalities": ["CT"]},
    }
    body.update(overrides)
    return AiServiceConfig.model_validate(body)


@pytest.fixture
def study() -> StudyView:
    ct = make_ct_series(3, 2.0, 2.0)
    scout = make_scout(str(ct[0].StudyInstanceUID))
    return study_view(ct + scout)


def request_of(study: StudyView, config: AiServiceConfig) -> AiServiceRequest:
    request = ai_service_request(study, config)
    assert len(request.series) == 1  # the CT axial series; the localizer is not sent
    return request


def good_answer(series_uid: str) -> dict[str, Any]:
    return {
        "model_version": "vendor-2.1",
        "findings": [
            {
                "code": "ai.ich",
                "score": 0.87,
                "severity": "warning",
                "message": "Possible haemorrhage",
                "series_uid": series_uid,
                "concept": {"value": "50960005", "scheme": "SCT", "meaning": "Hemorrhage"},
            },
            {"code": "ai.quality", "score": 0.2, "severity": "info", "message": "ok"},
        ],
    }


async def test_good_answer_gives_findings_and_sends_the_token(
    vendor: Vendor, token_file: Path, study: StudyView
) -> None:
    series_uid = study.series[0].series_uid
    path = vendor.plan(Reply(body=good_answer(series_uid)))
    config = service(vendor.url(path), token_file)
    report = await call_ai_service(config, request_of(study, config))
    assert report.status == "passed"
    assert report.task == "ai_vendor"
    assert report.counts["attempts"] == 1
    ich, quality = report.findings
    assert (ich.code, ich.severity, ich.score) == ("ai.ich", "warning", 0.87)
    assert ich.message == "ai.ich: score 0.870"  # free text of the vendor is not kept
    assert ich.series_uid == series_uid
    assert ich.concept is not None and ich.concept.value == "50960005"
    assert quality.series_uid is None
    (hit,) = vendor.hits(path)
    assert hit.headers["Authorization"] == f"Bearer {TOKEN}"
    sent = json.loads(hit.body)
    assert sent["study_uid"] == study.study_uid
    assert sent["series"] == [
        {
            "series_uid": series_uid,
            "modality": "CT",
            "sop_uids": [ref.sop_uid for ref in study.series[0].instances],
        }
    ]
    assert b"TEST^QC" not in hit.body and b"QC-TEST" not in hit.body and b"2024" not in hit.body


async def test_slow_answer_past_the_deadline_times_out(vendor: Vendor, study: StudyView) -> None:
    path = vendor.plan(Reply(body={"findings": []}, hold=True))
    config = service(vendor.url(path), deadline_s=0.5)
    report = await call_ai_service(config, request_of(study, config))
    assert report.status == "timed_out"
    assert report.detail == "deadline_exceeded"
    assert report.findings == ()


async def test_503_then_200_is_retried(vendor: Vendor, token_file: Path, study: StudyView) -> None:
    uid = study.series[0].series_uid
    path = vendor.plan(Reply(503, {"error": "busy"}), Reply(body=good_answer(uid)))
    config = service(vendor.url(path), token_file)
    report = await call_ai_service(config, request_of(study, config))
    assert report.status == "passed"
    assert report.counts["attempts"] == 2
    assert len(report.findings) == 2
    hits = vendor.hits(path)
    assert len(hits) == 2
    assert all(h.headers["Authorization"] == f"Bearer {TOKEN}" for h in hits)


async def test_repeated_503_fails_after_max_attempts(vendor: Vendor, study: StudyView) -> None:
    path = vendor.plan(Reply(503, {"error": "busy"}))
    config = service(vendor.url(path), max_attempts=3)
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "http_503")
    assert len(vendor.hits(path)) == 3


async def test_400_fails_without_retry(vendor: Vendor, study: StudyView) -> None:
    path = vendor.plan(Reply(400, {"error": "Patient DOE^JOHN unknown"}))
    config = service(vendor.url(path))
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "http_400")
    assert len(vendor.hits(path)) == 1


async def test_redirect_is_not_followed(vendor: Vendor, token_file: Path, study: StudyView) -> None:
    elsewhere = vendor.plan(Reply(body={"findings": []}))
    path = vendor.plan(Reply(307, {}, headers={"Location": vendor.url(elsewhere)}))
    config = service(vendor.url(path), token_file)
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "http_307")
    assert vendor.hits(elsewhere) == []


@pytest.mark.parametrize(
    ("finding", "reason"),
    [
        ({"code": "ai.x", "score": "0.9", "severity": "info"}, "findings.0.score"),
        ({"code": "ai.x", "score": 0.9, "severity": "fatal"}, "findings.0.severity"),
        ({"code": "pixels.x", "score": 0.9, "severity": "info"}, "findings.0.code"),
        ({"code": "ai.x", "score": 0.9, "severity": "info", "message": 7}, "findings.0.message"),
        ({"code": "ai.x", "severity": "info", "series_uid": "1.2.3.999"}, "series_uid"),
    ],
)
async def test_hostile_answer_fails_with_a_reason(
    vendor: Vendor, study: StudyView, finding: dict[str, Any], reason: str
) -> None:
    path = vendor.plan(Reply(body={"findings": [finding]}))
    config = service(vendor.url(path))
    report = await call_ai_service(config, request_of(study, config))
    assert report.status == "failed"
    assert report.detail.startswith("invalid_response")
    assert reason in report.detail
    assert report.findings == ()
    assert "0.9" not in report.detail and "fatal" not in report.detail


async def test_not_json_and_too_large_fail(vendor: Vendor, study: StudyView) -> None:
    junk = vendor.plan(Reply(raw=b"<html>oops</html>"))
    config = service(vendor.url(junk))
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "invalid_response body json_invalid")
    big = vendor.plan(Reply(raw=b'{"findings": [], "pad": "' + b"x" * 4096 + b'"}'))
    config = service(vendor.url(big), max_response_bytes=2048)
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "response_too_large")


async def test_huge_message_is_cleaned_and_truncated(vendor: Vendor, study: StudyView) -> None:
    text = "Line\x1b[31m one\r\n\x00\u200b" + "y" * 50_000
    answer = {"findings": [{"code": "ai.x", "score": 1, "severity": "blocking", "message": text}]}
    path = vendor.plan(Reply(body=answer))
    config = service(vendor.url(path), keep_vendor_messages=True)
    report = await call_ai_service(config, request_of(study, config))
    assert report.status == "passed"  # an advisory service cannot block: severity capped
    (finding,) = report.findings
    assert finding.severity == "warning"
    assert report.counts["downgraded"] == 1
    assert len(finding.message) == MESSAGE_MAX_CHARS
    assert finding.message.startswith("Line[31m one y")
    assert all(ch.isprintable() for ch in finding.message)
    blocking = service(vendor.url(path), blocking=True)
    held = await call_ai_service(blocking, request_of(study, blocking))
    assert held.status == "held" and held.blocking
    assert held.findings[0].message == "ai.x: score 1.000"  # vendor text dropped by default


async def test_unreachable_service_is_retried_then_fails(study: StudyView) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = service(f"http://127.0.0.1:{port}/ai", max_attempts=2)
    report = await call_ai_service(config, request_of(study, config))
    assert (report.status, report.detail) == ("failed", "connection_error")
    assert report.counts["attempts"] == 2


async def test_no_series_taken_is_skipped_without_a_call(vendor: Vendor) -> None:
    path = vendor.plan(Reply(body={"findings": []}))
    config = service(vendor.url(path))
    request = ai_service_request(study_view(make_mr_series(2)), config)
    report = await call_ai_service(config, request)
    assert report.status == "skipped"
    assert vendor.hits(path) == []


def test_clean_text() -> None:
    assert clean_text("a\tb\x07c\u202e d") == "a bc d"
    assert len(clean_text("z" * 500, 20)) == 20
