"""The daemon's re-identification map: sealed at rest, looked up only by an admin (API and CLI
through the daemon), every lookup audited with its user and without the original."""

from __future__ import annotations

import asyncio
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import pytest
from review_rig import held_study, instances

from dxai.actors.outbound import build_pipeline
from dxai.configs.schema.review import ReviewUser
from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.audit import read_records
from dxai.daemon.cli import main
from dxai.daemon.review.actions import FILE_NAME, ActionQueue
from dxai.daemon.review.api import ReviewApp
from dxai.daemon.review.auth import Authenticator
from dxai.daemon.review.component import ReviewComponent
from dxai.daemon.review.reid import FILE_NAME as REID_FILE
from dxai.daemon.review.reid import ReidLookup, open_reid_map

pytestmark = pytest.mark.unit

TOKENS = {"root": "root-token-0123456789", "alice": "alice-token-0123456789"}
ROLES = {"root": "admin", "alice": "reviewer"}


def _users(tmp: Path) -> dict[str, dict[str, str]]:
    users = {}
    for name, token in TOKENS.items():
        path = tmp / f"{name}.token"
        path.write_text(token + "\n")
        users[name] = {"role": ROLES[name], "token_file": str(path)}
    return users


def _record(config: DxaiConfig) -> tuple[str, str]:
    """Process one instance into the sealed map: (its original SOP UID, the de-identified)."""
    raw = instances(1)[0]
    reid = open_reid_map(config)
    assert reid is not None
    pipeline = build_pipeline(config, reid=reid)[0]
    out = pipeline.process(raw)
    pipeline.close()
    assert out.status == "passed" and out.sop_uid_out is not None
    return str(pydicom.dcmread(BytesIO(raw)).SOPInstanceUID), out.sop_uid_out


def _extra(tmp: Path) -> dict[str, Any]:
    deid = {"pixels": "never", "reidentification_map": True}
    return {"deid": deid, "review": {"users": _users(tmp)}}


async def test_map_is_sealed_and_an_admin_reads_it_through_the_api(tmp_path: Path) -> None:
    async with held_study(tmp_path, _extra(tmp_path)) as rig:
        original, new = _record(rig.config)
        for path in tmp_path.glob(REID_FILE + "*"):
            assert original.encode() not in path.read_bytes(), path.name
        reid_map = open_reid_map(rig.config)
        users = {n: ReviewUser(**u) for n, u in _users(tmp_path).items()}  # type: ignore[arg-type]
        app = ReviewApp(rig.service, Authenticator(users), reid=ReidLookup(reid_map, rig.audit))
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
            root = {"authorization": f"Bearer {TOKENS['root']}"}
            alice = {"authorization": f"Bearer {TOKENS['alice']}"}
            answer = await http.post("/api/v1/reid/lookup", json={"uid": new}, headers=root)
            assert answer.status_code == 200 and answer.json()["original"] == original
            denied = await http.post("/api/v1/reid/lookup", json={"uid": new}, headers=alice)
            assert denied.status_code == 403
            assert (await http.post("/api/v1/reid/lookup", json={"uid": new})).status_code == 401
            unknown = await http.post("/api/v1/reid/lookup", json={"uid": "2.25.7"}, headers=root)
            assert unknown.status_code == 404
            bad = await http.post("/api/v1/reid/lookup", json={"uid": "x'--"}, headers=root)
            assert bad.status_code == 400
        assert reid_map is not None
        reid_map.close()
    records = list(read_records(tmp_path / "audit.sqlite"))
    lookups = [r for r in records if r.kind == "reid_lookup"]
    found = [(r.actor, r.data["found"]) for r in lookups]
    assert found == [("user:root", True), ("user:root", False)]
    assert lookups[0].data["key"] == new
    denials = [r for r in records if r.kind == "review_denied"]
    assert [(r.actor, r.data["action"]) for r in denials] == [("user:alice", "reid_lookup")]
    assert all(original not in str(r.as_dict()) for r in records)


async def test_the_map_off_answers_503(tmp_path: Path) -> None:
    async with held_study(tmp_path) as rig:
        users = {n: ReviewUser(**u) for n, u in _users(tmp_path).items()}  # type: ignore[arg-type]
        app = ReviewApp(rig.service, Authenticator(users), reid=ReidLookup(None, rig.audit))
        transport = httpx.ASGITransport(app=app.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://review") as http:
            root = {"authorization": f"Bearer {TOKENS['root']}"}
            answer = await http.post("/api/v1/reid/lookup", json={"uid": "2.25.1"}, headers=root)
            assert answer.status_code == 503


async def test_cli_lookup_goes_through_the_daemon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with held_study(tmp_path, _extra(tmp_path)) as rig:
        original, new = _record(rig.config)
        base = ["review", "reid", "--uid", new, "--data-dir", str(tmp_path), "--wait", "60"]
        component = ReviewComponent(rig.config, rig.review, rig.jobs, rig.audit, rig.pipeline)
        async with component:
            code = await asyncio.to_thread(main, [*base, "--user", "root"])
            assert code == 0 and capsys.readouterr().out.strip() == original
            code = await asyncio.to_thread(main, [*base, "--user", "alice"])
            assert code == 1 and "review_forbidden" in capsys.readouterr().err
            code = await asyncio.to_thread(main, [*base, "--user", "mallory"])
            assert code == 1
    queue = ActionQueue(tmp_path / "review" / FILE_NAME)
    first = queue.get(1)
    assert first is not None and first.status == "done" and first.result == ""  # cleared
    lookups = [r for r in read_records(tmp_path / "audit.sqlite") if r.kind == "reid_lookup"]
    assert [(r.actor, r.data["via"]) for r in lookups] == [("user:root", "cli")]
