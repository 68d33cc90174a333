"""Scale-out without loss: daemons of one consumer group, one killed for good, partitions moving.

Two daemons (subprocesses, ``kafka.transactional``, watermark commits) share a 4-partition topic
of small local studies.  While jobs are in flight one is SIGKILLed and its data dir deleted (a
pod rescheduled on a fresh volume): the survivor takes its partitions over, rebuilds their
state from the state topic and runs what the dead one left unfinished.  Then a third daemon
joins and the survivor stops gracefully while jobs run (partitions move between live daemons):
jobs concluded before a move are not run again.  Read with ``read_committed``: every event has
exactly one final decision and exactly one results event, and they agree.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from kafka_helpers import kafka_section, read_committed
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

PARTITIONS = 4
FIRST, SECOND = 40, 24
PER_STUDY = 6
DEADLINE_S = 150.0
FINAL = {"proceed": "released", "hold": "held_for_review", "block": "blocked"}
ACTIVE = ("received", "fetching", "processing")


@pytest_asyncio.fixture
async def topic4(kafka_bootstrap: str) -> AsyncIterator[str]:
    """A fresh 4-partition input topic; it and every topic derived from it deleted after."""
    topic = f"test.scaleout.{uuid.uuid4().hex[:12]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=20_000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
        yield topic
        existing = set(await admin.list_topics())
        derived = [f"{topic}.{s}" for s in ("decisions", "results", "dlq", "state")]
        await admin.delete_topics([t for t in [topic, *derived] if t in existing])
    finally:
        await admin.close()


def _studies(root: Path, count: int, make_ct: Callable[[], Dataset]) -> list[str]:
    """``count`` small studies (``PER_STUDY`` CT slices each) as folders under ``root``."""
    uids = []
    for i in range(count):
        study, series = generate_uid(), generate_uid()
        folder = root / f"s{i}"
        folder.mkdir(parents=True)
        for j in range(PER_STUDY):
            ds = make_ct()
            ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
            ds.save_as(folder / f"{j}.dcm", enforce_file_format=True)
        uids.append(study)
    return uids


def _config(tmp: Path, name: str, bootstrap: str, topic: str) -> Path:
    kafka = kafka_section(
        bootstrap,
        topic,
        client_id=name,
        transactional=True,
        session_timeout_ms=6000,
        transaction_timeout_ms=8000,
        revoke_grace_s=30,
        max_in_flight_jobs=4,
        retry_backoff_initial_s=0.2,
        retry_backoff_max_s=1.0,
    )
    config = {
        "mode": "production",
        "state": {"data_dir": str(tmp / name)},
        "deid": {"pixels": "never"},
        "pipeline": {"decision_deadline_s": 600, "cpu_workers": 1, "drain_grace_s": 30},
        "kafka": kafka,
        "sources": {"inbox": {"kind": "local", "root": str(tmp / "inbox")}},
        "destinations": {"default": {"kind": "folder", "path": str(tmp / "out")}},
        "metrics": {"enabled": False},
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _start(tmp: Path, name: str, bootstrap: str, topic: str) -> subprocess.Popen[bytes]:
    config = _config(tmp, name, bootstrap, topic)
    code = "from dxai.daemon.cli import entry; entry()"
    with (tmp / f"{name}.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _jobs(tmp: Path, name: str) -> dict[str, tuple[str, bool]]:
    """job id -> (state, results sent) in a daemon's job store (empty before it exists)."""
    db = tmp / name / "dxai.sqlite3"
    if not db.exists():
        return {}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        rows = con.execute("SELECT exchange_job_id, state, results_sent FROM jobs")
        return {job: (state, bool(sent)) for job, state, sent in rows}
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()


async def _produce(bootstrap: str, topic: str, uids: list[str], first: int) -> list[str]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    jobs = []
    try:
        for i, uid in enumerate(uids, start=first):
            job = f"scale-{i}"
            event = {
                "event_type": "study_scheduled_for_exchange",
                "study_uid": uid,
                "destination": "default",
                "exchange_job_id": job,
                "source": {"kind": "local", "name": "inbox", "path": f"s{i}"},
            }
            await producer.send_and_wait(topic, json.dumps(event).encode(), key=job.encode())
            jobs.append(job)
    finally:
        await producer.stop()
    return jobs


async def _outputs(bootstrap: str, topic: str, kind: str) -> list[dict[str, Any]]:
    records = await read_committed(bootstrap, f"{topic}.{kind}", time.monotonic() + 60)
    return [json.loads(r.value or b"") for r in records]


async def _until(what: str, check: Callable[[], Any], seconds: float = DEADLINE_S) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy, or fail."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        await asyncio.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


async def _all_results(bootstrap: str, topic: str, jobs: list[str]) -> list[dict[str, Any]]:
    async def done() -> list[dict[str, Any]] | None:
        results = await _outputs(bootstrap, topic, "results")
        return results if {r["exchange_job_id"] for r in results} >= set(jobs) else None

    found: list[dict[str, Any]] = await _until("every job's results", done)
    return found


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


def _took_over(tmp: Path, *names: str) -> bool:
    """Each daemon named rebuilt the partitions it was assigned (the group settled)."""
    return all(b"partitions taken over" in (tmp / f"{n}.log").read_bytes() for n in names)


def _mid_flight(tmp: Path, name: str, jobs: list[str]) -> bool:
    """Some of ``jobs`` have sent their outputs from this daemon, some still run there."""
    mine = [v for j, v in _jobs(tmp, name).items() if j in jobs]
    return any(s in ACTIVE for s, _ in mine) and any(sent for _, sent in mine)


async def test_scaleout_kill_one_for_good_then_move_partitions_between_live_daemons(
    tmp_path: Path, kafka_bootstrap: str, topic4: str, make_ct: Callable[[], Dataset]
) -> None:
    uids = _studies(tmp_path / "inbox", FIRST + SECOND, make_ct)
    procs = {n: _start(tmp_path, n, kafka_bootstrap, topic4) for n in ("d1", "d2")}
    try:
        await _until("d1 and d2 sharing", lambda: _took_over(tmp_path, "d1", "d2"))
        first = await _produce(kafka_bootstrap, topic4, uids[:FIRST], 0)
        await _until("d1 mid-flight", lambda: _mid_flight(tmp_path, "d1", first))
        os.kill(procs["d1"].pid, signal.SIGKILL)
        await asyncio.to_thread(procs["d1"].wait, 30)
        d1 = _jobs(tmp_path, "d1")
        shutil.rmtree(tmp_path / "d1")  # the node is lost for good
        await _all_results(kafka_bootstrap, topic4, first)
        d2_first = _jobs(tmp_path, "d2")
        sent_by_d1 = {j for j, (_, sent) in d1.items() if sent}
        assert sent_by_d1 and not sent_by_d1 & set(d2_first), "d2 re-ran what d1 concluded"
        assert {j for j, (s, _) in d1.items() if s in ACTIVE} <= set(d2_first), "d1's job lost"
        concluded_before_move = set(first)

        procs["d3"] = _start(tmp_path, "d3", kafka_bootstrap, topic4)
        await _until("d3 sharing with d2", lambda: _took_over(tmp_path, "d3"))
        second = await _produce(kafka_bootstrap, topic4, uids[FIRST:], FIRST)
        await _until("d2 mid-flight", lambda: _mid_flight(tmp_path, "d2", second))
        procs["d2"].send_signal(signal.SIGTERM)  # a graceful stop while its jobs run
        assert await asyncio.to_thread(procs["d2"].wait, 90) == 0
        results = await _all_results(kafka_bootstrap, topic4, first + second)
        procs["d3"].send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(procs["d3"].wait, 90) == 0
    finally:
        for proc in procs.values():
            _reap(proc)
    decisions = await _outputs(kafka_bootstrap, topic4, "decisions")
    _assert_exactly_once(first + second, decisions, results)
    d2, d3 = _jobs(tmp_path, "d2"), _jobs(tmp_path, "d3")
    assert not concluded_before_move & set(d3), "d3 re-ran jobs concluded before it joined"
    assert not {j for j, (s, _) in d2.items() if s not in ACTIVE} & set(d3), "ran on d2 and d3"
    assert set(d3) & set(second), "the partitions that moved to d3 brought it no work"
    assert set(d2) | set(d3) >= set(second)
    logs = (tmp_path / "d2.log").read_bytes() + (tmp_path / "d3.log").read_bytes()
    assert b"partitions taken over" in logs and b"partitions handed over" in logs


def _assert_exactly_once(
    jobs: list[str], decisions: list[dict[str, Any]], results: list[dict[str, Any]]
) -> None:
    assert not [d for d in decisions if d["decision"] not in FINAL]  # no deferred either
    finals = Counter(d["exchange_job_id"] for d in decisions)
    counts = Counter(r["exchange_job_id"] for r in results)
    assert set(finals) == set(counts) == set(jobs), "an event was lost"
    assert [j for j, n in finals.items() if n != 1] == [], "a job has two final decisions"
    assert [j for j, n in counts.items() if n != 1] == [], "a job has two results events"
    state = {r["exchange_job_id"]: r["state"] for r in results}
    for decision in decisions:
        assert FINAL[decision["decision"]] == state[decision["exchange_job_id"]]
    assert all(r["state"] == "released" for r in results)
    assert all(r["instances_released"] == PER_STUDY for r in results)
