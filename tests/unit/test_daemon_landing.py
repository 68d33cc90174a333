"""Landing-zone cleanup: batches go once their job is durably finished, after the retention."""

from __future__ import annotations

import json
from pathlib import Path

from dxai.daemon.intake.landing import LandingZone
from dxai.daemon.intake.landing_sweep import sweep_landing
from dxai.daemon.jobs import JobStore

STUDY = "1.2.826.0.1.3680043.8.498.7"


def _seal(zone: LandingZone, job_id: str, sop: str) -> bytes:
    zone.write(STUDY, sop, b"DICM")
    event = {
        "event_type": "study_received",
        "study_uid": STUDY,
        "destination": "default",
        "exchange_job_id": job_id,
        "source": {"kind": "local", "path": str(zone.batch_path(job_id))},
    }
    raw = json.dumps(event).encode()
    assert zone.seal(STUDY, job_id, raw)
    return raw


async def _finish(store: JobStore, raw: bytes, job_id: str, state: str, sent: bool) -> None:
    job = (await store.claim(job_id, STUDY, "1", raw.decode())).job
    for step in ("fetching", "processing", state):
        await store.set_state(job.key, step)
    await store.record_decision(job.key, "{}")
    await store.record_results(job.key, "{}")
    if sent:
        await store.mark_decision_sent(job.key)
        await store.mark_results_sent(job.key)


async def test_sweep_removes_only_finished_released_blocked_failed(tmp_path: Path) -> None:
    zone = LandingZone(tmp_path / "landing")
    cases = {
        "scp-released": ("released", True),
        "scp-failed": ("failed", True),
        "scp-held": ("held_for_review", True),
        "scp-unsent": ("released", False),
    }
    async with JobStore(tmp_path / "jobs.sqlite3") as store:
        for n, (job_id, (state, sent)) in enumerate(cases.items()):
            await _finish(store, _seal(zone, job_id, f"1.2.3.{n}"), job_id, state, sent)
        _seal(zone, "scp-running", "1.2.3.9")  # never claimed: still to be submitted
        assert await sweep_landing(zone, store, "1", retention_s=3600) == 0
        assert await sweep_landing(zone, store, "1", retention_s=0) == 2
    left = sorted(job_id for job_id, _raw in zone.sealed())
    assert left == ["scp-held", "scp-running", "scp-unsent"]
    assert not (zone.batches / "scp-released").exists()
    assert not (zone.batches / "scp-released.json").exists()
    assert sorted(p.name for p in zone.batches.iterdir() if p.suffix == ".json") == [
        f"{j}.json" for j in left
    ]
