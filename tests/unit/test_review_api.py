"""The review API and page on a held study: roles (401/403), escaping, CSRF, boxes, decisions,
the audit log naming the user, no PHI in URLs or logs."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from review_rig import PATIENT, Rig, held_study

from dxai.configs.schema.review import ReviewUser
from dxai.daemon.audit import read_records, verify_log
from dxai.daemon.review.api import COOKIE, ReviewApp
from dxai.daemon.review.auth import Authenticator

pytestmark = pytest.mark.unit

TOKENS = {"alice": "alice-token-0123456789", "victor": "victor-token-0123456789"}
ROLES = {"alice": "reviewer", "victor": "viewer"}


def _auth(tmp: Path) -> Authenticator:
    users = {}
    for name, token in TOKENS.items():
        path = tmp / f"{name}.token"
        path.write_text(token + "\n")
        users[name] = ReviewUser(role=ROLES[name], token_file=str(path))  # type: ignore[arg-type]
    return Authenticator(users)


@asynccontextmanager
async def _client(tmp: Path) -> AsyncIterator[tuple[Rig, httpx.AsyncClient]]:
    async with held_study(tmp) as rig:
        app = ReviewApp(rig.service, _auth(tmp))
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as client:
            yield rig, client


def _bearer(user: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TOKENS[user]}"}


def _records(tmp: Path, kind: str) -> list[Any]:
    return [r for r in read_records(tmp / "audit.sqlite") if r.kind == kind]


async def test_no_or_bad_token_is_401(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        assert (await client.get("/api/v1/reviews")).status_code == 401
        bad = {"authorization": "Bearer not-the-token-at-all"}
        answer = await client.get("/api/v1/reviews", headers=bad)
        assert answer.status_code == 401 and answer.headers["www-authenticate"] == "Bearer"
        assert (await client.post(f"/api/v1/reviews/{key}/approve")).status_code == 401
        page = await client.get("/review/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"] == "/review/login"
        assert (await client.post(f"/review/jobs/{key}/approve")).status_code == 401
    assert rig.sink.stored == []


async def test_viewer_reads_but_may_not_approve(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        listed = await client.get("/api/v1/reviews", headers=_bearer("victor"))
        assert listed.status_code == 200
        (summary,) = listed.json()["reviews"]
        assert summary["job_key"] == key and summary["reasons"] == ["pixel_second_reader_phi"]
        refused = await client.post(f"/api/v1/reviews/{key}/approve", headers=_bearer("victor"))
        assert refused.status_code == 403
        assert (await rig.jobs.get(key)).state == "held_for_review"  # type: ignore[union-attr]
    assert rig.sink.stored == []
    (denied,) = _records(tmp_path, "review_denied")
    assert denied.actor == "user:victor" and denied.data == {"action": "approve"}


async def test_reviewer_approves_and_the_study_is_released(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        shown = (await client.get(f"/api/v1/reviews/{key}", headers=_bearer("alice"))).json()
        (inst,) = shown["instances"]
        assert inst["held_boxes"][0]["x1"] == 60 and inst["status"] == "held"
        for which in ("before", "after"):
            url = f"/api/v1/reviews/{key}/instances/{inst['sop_uid']}/{which}.png"
            png = await client.get(url, headers=_bearer("alice"))
            assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
            assert png.headers["cache-control"] == "no-store"
        body = {"comment": "checked the corner text"}
        ok = await client.post(
            f"/api/v1/reviews/{key}/approve", json=body, headers=_bearer("alice")
        )
        assert ok.status_code == 200 and ok.json()["instances_released"] == 2
        again = await client.post(f"/api/v1/reviews/{key}/approve", headers=_bearer("alice"))
        assert again.status_code == 409
        await rig.pipeline.drain(30)
        job = await rig.jobs.get(key)
        assert job is not None and job.state == "released" and job.finished
    assert len(rig.sink.stored) == 2
    assert [d.decision for d in rig.publisher.decisions] == ["hold", "proceed"]
    final = rig.publisher.results_[-1]
    assert final.state == "released" and final.instances_released == 2
    assert final.certificate is not None and len(final.certificate.instances_sha256) == 2
    assert [t.task for t in final.tasks][-1] == "review"
    approve = _records(tmp_path, "review_approve")[0]
    assert approve.actor == "user:alice" and approve.data["comment_chars"] > 0
    decision = _records(tmp_path, "decision")[-1]
    assert decision.actor == "user:alice" and decision.data["decision"] == "proceed"
    assert verify_log(tmp_path / "audit.sqlite").ok
    assert not rig.review.folder(key).joinpath("blobs").exists()  # decided: nothing kept


async def test_reject_blocks(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        no = await client.post(f"/api/v1/reviews/{key}/reject", headers=_bearer("alice"))
        assert no.status_code == 200
        await rig.pipeline.drain(30)
        assert (await rig.jobs.get(key)).state == "blocked"  # type: ignore[union-attr]
    assert rig.sink.stored == []
    assert [d.decision for d in rig.publisher.decisions] == ["hold", "block"]
    assert rig.publisher.decisions[-1].reasons[0].code == "review_rejected"
    assert _records(tmp_path, "review_reject")[0].actor == "user:alice"


async def test_boxes_must_be_verified_before_approval(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        (inst,) = (await client.get(f"/api/v1/reviews/{key}", headers=_bearer("alice"))).json()[
            "instances"
        ]
        base = f"/api/v1/reviews/{key}/instances/{inst['sop_uid']}"
        box = {"x0": 0, "y0": 0, "x1": 40, "y1": 20}
        added = await client.post(base + "/boxes", json=box, headers=_bearer("alice"))
        assert added.status_code == 201
        refused = await client.post(f"/api/v1/reviews/{key}/approve", headers=_bearer("alice"))
        assert refused.status_code == 409 and "not verified" in refused.json()["detail"]
        verified = await client.post(base + "/verify", headers=_bearer("alice"))
        assert verified.status_code == 200 and verified.json()["status"] == "unverified"
        ok = await client.post(f"/api/v1/reviews/{key}/approve", headers=_bearer("alice"))
        assert ok.status_code == 200
    released = [_pixels(d) for d in rig.sink.stored]
    assert any(int(p[:20, :40].max()) == int(p.min()) for p in released)  # the box is filled
    kinds = [r.kind for r in read_records(tmp_path / "audit.sqlite")]
    assert kinds.index("review_box_added") < kinds.index("review_verify") < kinds.index("release")


def _pixels(data: bytes) -> Any:
    import io

    import pydicom

    return pydicom.dcmread(io.BytesIO(data)).pixel_array


async def _login(client: httpx.AsyncClient, user: str) -> str:
    answer = await client.post(
        "/review/login", data={"token": TOKENS[user]}, follow_redirects=False
    )
    assert answer.status_code == 303 and COOKIE in answer.cookies
    assert "httponly" in answer.headers["set-cookie"].lower()
    assert "samesite=strict" in answer.headers["set-cookie"].lower()
    return str(answer.cookies[COOKIE])


async def test_page_escapes_markup_and_needs_the_csrf_token(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        assert (await client.post("/review/login", data={"token": "nope"})).status_code == 401
        await _login(client, "alice")
        await rig.service.comment(key, "alice", "<img src=x onerror=alert(2)>")
        page = await client.get(f"/review/jobs/{key}")
        assert page.status_code == 200
        assert PATIENT not in page.text and "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "<img src=x" not in page.text and "&lt;img src=x" in page.text
        assert "default-src 'none'" in page.headers["content-security-policy"]
        forged = await client.post(f"/review/jobs/{key}/approve", data={"csrf": "guess"})
        assert forged.status_code == 403
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        ok = await client.post(
            f"/review/jobs/{key}/approve", data={"csrf": csrf.group(1)}, follow_redirects=False
        )
        assert ok.status_code == 303 and ok.headers["location"].endswith("?done=approved")
    assert len(rig.sink.stored) == 2


async def test_viewer_page_approval_is_refused(tmp_path: Path) -> None:
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        await _login(client, "victor")
        page = await client.get(f"/review/jobs/{key}")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        refused = await client.post(f"/review/jobs/{key}/approve", data={"csrf": csrf.group(1)})
        assert refused.status_code == 403 and "viewer" in refused.text
    assert rig.sink.stored == []


async def test_no_phi_in_urls_or_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with _client(tmp_path) as (rig, client):
        key = rig.job.key
        await _login(client, "alice")
        page = await client.get(f"/review/jobs/{key}")
        urls = re.findall(r'(?:href|src|action)="([^"]+)"', page.text)
        assert urls and all(re.fullmatch(r"[/A-Za-z0-9._?=-]+", u) for u in urls), urls
        await client.post(f"/api/v1/reviews/{key}/approve", headers=_bearer("alice"))
    text = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
    assert "alert(1)" not in text and TOKENS["alice"] not in text
    audit = "\n".join(repr(r.as_dict()) for r in read_records(tmp_path / "audit.sqlite"))
    assert "alert(1)" not in audit and "checked" not in audit


async def test_an_oversized_login_form_is_refused_without_reading_it(tmp_path: Path) -> None:
    """The login form is open to anyone who reaches the port: a body past the form bound is
    refused (413) once the bound is passed, whether or not it declares its length."""
    pulled = [0]

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(1 << 14):  # 1 GiB, were it read to the end
            pulled[0] += 1
            yield b"token=" + b"a" * (64 * 1024 - 6)

    async with _client(tmp_path) as (rig, client):
        answer = await client.post("/review/login", content=endless())
        assert answer.status_code == 413
        assert pulled[0] <= 3
        comments = f"/api/v1/reviews/{rig.job.key}/comments"
        answer = await client.post(comments, headers=_bearer("alice"), content=endless())
        assert answer.status_code == 413 and pulled[0] <= 6
        answer = await client.post(comments, headers=_bearer("alice"), json={"text": "ok"})
        assert answer.status_code == 201
    assert len(_records(tmp_path, "review_comment")) == 1
