"""A held study is kept for review by the pipeline; the CLI lists it and queues decisions that
the daemon's review component carries out; retention expires what nobody decided."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
from review_rig import held_study

from dxai.daemon.audit import read_records
from dxai.daemon.cli import main
from dxai.daemon.review.actions import FILE_NAME, ActionQueue
from dxai.daemon.review.component import ReviewComponent

pytestmark = pytest.mark.unit


async def test_held_study_is_kept_sealed_and_staging_is_gone(tmp_path: Path) -> None:
    async with held_study(tmp_path) as rig:
        manifest = rig.review.load(rig.job.key)
        assert manifest is not None and manifest.status == "pending"
        assert sorted(e.status for e in manifest.instances) == ["held", "passed"]
        (held,) = manifest.held
        assert held.reviewable and held.held_reasons == ["second_reader_phi"]
        assert rig.review.read_blob(rig.job.key, held.n, "before") == rig.inputs[0]
        assert rig.sink.stored == []  # a hold releases nothing
        assert not any(rig.pipeline.staging.root.iterdir())
    for path in (tmp_path / "review").rglob("*"):
        if path.is_file():
            assert b"alert(1)" not in path.read_bytes(), path.name
    kept = [r for r in read_records(tmp_path / "audit.sqlite") if r.kind == "review_kept"]
    assert kept[0].data["instances_held"] == 1 and kept[0].data["instances_passed"] == 1
    kinds = [r.kind for r in read_records(tmp_path / "audit.sqlite")]
    assert kinds.index("review_kept") < kinds.index("decision")  # kept before the hold


async def test_cli_lists_held_jobs_as_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async with held_study(tmp_path) as rig:
        code = await asyncio.to_thread(
            main, ["review", "list", "--json", "--data-dir", str(tmp_path)]
        )
        assert code == 0
        lines = capsys.readouterr().out.splitlines()
        assert len(lines) == 1
        job = json.loads(lines[0])
        assert job["job_key"] == rig.job.key and job["reasons"] == ["pixel_second_reader_phi"]
        (inst,) = job["instances"]
        assert inst["status"] == "held" and inst["held_boxes"] == 1
        assert inst["sop_uid"] and "alert" not in lines[0]
        code = await asyncio.to_thread(
            main, ["review", "show", rig.job.key, "--data-dir", str(tmp_path)]
        )
        assert code == 0 and json.loads(capsys.readouterr().out)["job_key"] == rig.job.key


async def test_cli_approval_is_carried_out_by_the_daemon(tmp_path: Path) -> None:
    async with held_study(tmp_path) as rig:
        argv = ["review", "approve", rig.job.key, "--data-dir", str(tmp_path)]
        argv += ["--user", "carol", "--comment", "ok by phone"]
        async with ReviewComponent(
            rig.config, rig.review, rig.jobs, rig.audit, rig.pipeline
        ):  # polls the queue every review.poll_interval_s
            code = await asyncio.to_thread(main, [*argv, "--wait", "60"])
        assert code == 0
        await rig.pipeline.drain(30)
        assert (await rig.jobs.get(rig.job.key)).state == "released"  # type: ignore[union-attr]
        detail = await rig.service.show(rig.job.key)
        assert detail["comments"][0]["text"] == "ok by phone"
    assert len(rig.sink.stored) == 2
    approve = [r for r in read_records(tmp_path / "audit.sqlite") if r.kind == "review_approve"]
    assert approve[0].actor == "user:carol" and approve[0].data["via"] == "cli"


async def test_cli_action_on_a_decided_job_fails(tmp_path: Path) -> None:
    async with held_study(tmp_path) as rig:
        await rig.service.reject(rig.job.key, "alice")
        queue = ActionQueue(tmp_path / "review" / FILE_NAME)
        argv = ["review", "approve", rig.job.key, "--data-dir", str(tmp_path), "--wait", "0"]
        assert await asyncio.to_thread(main, [*argv, "--user", "bob"]) == 3  # nobody polled
        component = ReviewComponent(rig.config, rig.review, rig.jobs, rig.audit, rig.pipeline)
        assert await component.take_actions() == 1
        (action,) = [queue.get(1)]
        assert action is not None and (action.status, action.code) == ("failed", "review_conflict")
    assert rig.sink.stored == []


async def test_retention_expires_an_undecided_study(tmp_path: Path) -> None:
    async with held_study(tmp_path, {"review": {"retention_s": 60}}) as rig:
        component = ReviewComponent(rig.config, rig.review, rig.jobs, rig.audit, rig.pipeline)
        assert await component.purge_now() == {"expired": 0, "removed": 0}
        manifest = rig.review.load(rig.job.key)
        assert manifest is not None
        manifest.kept_at = time.time() - 120
        rig.review.save(manifest)
        assert await component.purge_now() == {"expired": 1, "removed": 0}
        await rig.pipeline.drain(30)
        job = await rig.jobs.get(rig.job.key)
        assert job is not None and job.state == "blocked"
        assert not (rig.review.folder(rig.job.key) / "blobs").exists()
        manifest = rig.review.load(rig.job.key)
        assert manifest is not None and manifest.status == "expired"
        manifest.decided_at = time.time() - 120
        rig.review.save(manifest)
        assert await component.purge_now() == {"expired": 0, "removed": 1}
        assert rig.review.job_keys() == []
    assert rig.publisher.decisions[-1].reasons[0].code == "review_expired"


async def test_component_serves_the_api_on_an_ephemeral_port(tmp_path: Path) -> None:
    token = tmp_path / "alice.token"
    token.write_text("alice-token-0123456789\n")
    users = {"alice": {"role": "reviewer", "token_file": str(token)}}
    async with held_study(tmp_path, {"review": {"http_port": 0, "users": users}}) as rig:
        component = ReviewComponent(rig.config, rig.review, rig.jobs, rig.audit, rig.pipeline)
        async with component:
            assert component.http_port
            base = f"http://127.0.0.1:{component.http_port}"
            async with httpx.AsyncClient(base_url=base) as http:
                assert (await http.get("/healthz")).status_code == 200
                assert (await http.get("/api/v1/reviews")).status_code == 401
                auth = {"authorization": "Bearer alice-token-0123456789"}
                listed = await http.get("/api/v1/reviews", headers=auth)
                assert [r["job_key"] for r in listed.json()["reviews"]] == [rig.job.key]
        assert component.server is not None and component.server._task is None


def test_review_users_need_distinct_token_files_and_a_listener_needs_users() -> None:
    from pydantic import ValidationError

    from dxai.configs.schema.root import DxaiConfig

    same = {"a": {"role": "viewer", "token_file": "/t"}, "b": {"role": "admin", "token_file": "/t"}}
    with pytest.raises(ValidationError, match="token file of its own"):
        DxaiConfig.model_validate({"review": {"users": same}})
    with pytest.raises(ValidationError, match="nobody could sign in"):
        DxaiConfig.model_validate({"review": {"http_port": 0}})
    with pytest.raises(ValidationError):
        DxaiConfig.model_validate({"review": {"retention_days": 3}})
