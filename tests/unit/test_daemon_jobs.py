"""The job store: idempotent claims, durable transitions, outbox flags, resume list."""

from __future__ import annotations

from pathlib import Path

import pytest

from dxai.daemon.jobs import InvalidTransitionError, JobStore, can_move, job_key

STUDY = "1.2.3.4"


async def test_claim_is_idempotent(tmp_path: Path) -> None:
    async with JobStore(tmp_path / "j.sqlite3") as store:
        first = await store.claim("job-1", STUDY, "1", "{}", "tp")
        again = await store.claim("job-1", STUDY, "1", "{}", "tp")
        other_version = await store.claim("job-1", STUDY, "2", "{}")
    assert first.created and not again.created and other_version.created
    assert first.job.key == again.job.key == job_key("job-1", STUDY, "1")
    assert other_version.job.key != first.job.key
    assert first.job.state == "received"


async def test_state_is_durable_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite3"
    async with JobStore(path) as store:
        key = (await store.claim("job-1", STUDY, "1", '{"a": 1}')).job.key
        await store.set_state(key, "fetching")
        await store.set_state(key, "processing")
    async with JobStore(path) as store:
        job = await store.get(key)
        assert job is not None
        assert job.state == "processing" and job.attempts == 1
        assert [j.key for j in await store.unfinished()] == [key]


async def test_invalid_transition_rejected(tmp_path: Path) -> None:
    async with JobStore(tmp_path / "j.sqlite3") as store:
        key = (await store.claim("job-1", STUDY, "1", "{}")).job.key
        with pytest.raises(InvalidTransitionError):
            await store.set_state(key, "released")
    assert can_move("processing", "held_for_review")
    assert not can_move("released", "fetching")


async def test_outbox_flags_finish_a_job(tmp_path: Path) -> None:
    async with JobStore(tmp_path / "j.sqlite3") as store:
        key = (await store.claim("job-1", STUDY, "1", "{}")).job.key
        for state in ("fetching", "processing", "released"):
            await store.set_state(key, state)
        await store.record_decision(key, '{"d": 1}')
        await store.record_decision(key, '{"d": 2}')
        job = await store.mark_decision_sent(key)
        assert job.decision_json == '{"d": 1}' and not job.finished
        assert [j.key for j in await store.unfinished()] == [key]
        await store.record_results(key, "{}")
        job = await store.mark_results_sent(key)
        assert job.finished
        assert await store.unfinished() == []
        counts = await store.count_by_state()
        assert counts["released"] == 1 and counts["received"] == 0
