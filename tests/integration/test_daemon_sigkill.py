"""SIGKILL the Kafka daemon mid-study, restart it: nothing lost, nothing duplicated, and the
decisions never contradict the results.

Run with and without ``kafka.transactional``; outputs are read by a ``read_committed`` consumer.
The decision deadline is short (the deferred decision is sent around the kill): at most one
``deferred`` decision, then exactly one final decision that agrees with the results, and the
restart does not spend the deadline.  Per-study release: nothing reaches the destination before
the study's decision, so the kill lands while the outputs are only staged on disk.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from kafka_helpers import kafka_section, read_committed
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

SERIES, PER_SERIES = 16, 4  # enough work that a quiet machine is still mid-study at the kill
DEADLINE_S = 180.0
DECISION_DEADLINE_S = 3.0
ACTIVE = ("received", "fetching", "processing")


def _write_config(tmp: Path, bootstrap: str, topic: str, pair: Any, transactional: bool) -> Path:
    config = {
        "mode": "production",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": "never"},
        # staged on disk only (no memory tier): the kill is timed by the staged files
        "pipeline": {
            "decision_deadline_s": DECISION_DEADLINE_S,
            "cpu_workers": 1,
            "staging_memory_max_bytes": 0,
        },
        "kafka": kafka_section(
            bootstrap, topic, session_timeout_ms=6000, transactional=transactional
        ),
        "source_dicomweb": {"base_url": pair.source.dicomweb_url},
        "destination_dicomweb": {"base_url": pair.dest.dicomweb_url},
        "metrics": {"enabled": False},
    }
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def _start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    code = "from dxai.daemon.cli import entry; entry()"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _upload_study(pair: Any, template: Dataset) -> str:
    study = generate_uid()
    async with httpx.AsyncClient(base_url=pair.source.base_url, timeout=30) as http:
        for _ in range(SERIES):
            series = generate_uid()
            for _ in range(PER_SERIES):
                template.StudyInstanceUID, template.SeriesInstanceUID = study, series
                template.SOPInstanceUID = generate_uid()
                template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
                buf = BytesIO()
                template.save_as(buf, enforce_file_format=True)
                (await http.post("/instances", content=buf.getvalue())).raise_for_status()
    return study


def _job_rows(db: Path) -> list[tuple[str, str, int]]:
    if not db.exists():
        return []
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
    try:
        return list(con.execute("SELECT job_key, state, attempts FROM jobs"))
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


def _staged_outputs(state_dir: Path) -> int:
    return sum(1 for _ in (state_dir / "staging").glob("*/out/*.dcm"))


async def _kill_mid_study(proc: subprocess.Popen[bytes], db: Path, pair: Any) -> str:
    """SIGKILL once outputs are staged while the job is still active (nothing sent yet)."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        rows = await asyncio.to_thread(_job_rows, db)
        staged = await asyncio.to_thread(_staged_outputs, db.parent)
        if rows and rows[0][1] in ACTIVE and staged >= PER_SERIES:
            assert await asyncio.to_thread(pair.dest.instance_count) == 0  # per-study release
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait, 30)
            state = (await asyncio.to_thread(_job_rows, db))[0][1]
            if state not in ACTIVE:
                pytest.fail(f"the job finished ({state}) before the kill landed; retune the test")
            return state
        if rows and rows[0][1] not in ACTIVE:
            pytest.fail("the job finished before it could be killed; retune the test")
        await asyncio.sleep(0.02)
    pytest.fail("the daemon never staged any output")


async def _read_all(bootstrap: str, topic: str, until: float) -> list[bytes]:
    """Every message value of ``topic`` up to its end offsets (read_committed)."""
    return [m.value or b"" for m in await read_committed(bootstrap, topic, until)]


async def _wait_results(bootstrap: str, topic: str, job: str) -> list[dict[str, Any]]:
    end = time.monotonic() + DEADLINE_S
    while True:
        mine = [json.loads(v) for v in await _read_all(bootstrap, topic, end)]
        mine = [e for e in mine if e["exchange_job_id"] == job]
        if mine:
            return mine
        if time.monotonic() > end:
            pytest.fail(f"no results for {job} before the deadline")
        await asyncio.sleep(0.5)


def _reap(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(30)


@pytest.mark.parametrize("transactional", [False, True], ids=["idempotent", "transactional"])
async def test_sigkill_mid_study_then_restart(
    tmp_path: Path,
    kafka_bootstrap: str,
    kafka_topic: str,
    clean_orthanc: Any,
    make_ct: Any,
    transactional: bool,
) -> None:
    study = await _upload_study(clean_orthanc, make_ct())
    config = _write_config(tmp_path, kafka_bootstrap, kafka_topic, clean_orthanc, transactional)
    db, log = tmp_path / "state" / "dxai.sqlite3", tmp_path / "daemon.log"
    event = {
        "event_type": "study_scheduled_for_exchange",
        "study_uid": study,
        "destination": "dest",
        "exchange_job_id": "kill-1",
        "source": {"kind": "dicomweb"},
    }
    first = _start(config, log)
    try:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(kafka_topic, json.dumps(event).encode(), key=b"k")
        finally:
            await producer.stop()
        await _kill_mid_study(first, db, clean_orthanc)
        assert clean_orthanc.dest.instance_count() == 0
        second = _start(config, log)
        try:
            results = await _wait_results(kafka_bootstrap, f"{kafka_topic}.results", "kill-1")
            second.send_signal(signal.SIGTERM)
            assert await asyncio.to_thread(second.wait, 60) == 0, log.read_text()[-3000:]
        finally:
            _reap(second)
    finally:
        _reap(first)
    end = time.monotonic() + 60
    decisions = [
        json.loads(v) for v in await _read_all(kafka_bootstrap, f"{kafka_topic}.decisions", end)
    ]
    decisions = [d for d in decisions if d["exchange_job_id"] == "kill-1"]
    dlq = await _read_all(kafka_bootstrap, f"{kafka_topic}.dlq", end)
    finals = [d for d in decisions if d["decision"] != "deferred"]
    deferred = [d for d in decisions if d["decision"] == "deferred"]
    assert len(results) == 1 and len(finals) == 1, (len(results), len(finals))
    assert len(deferred) <= 1 and all(d["partial"] for d in deferred)
    assert results[0]["state"] == "released" and finals[0]["decision"] == "proceed"
    assert decisions[-1]["decision"] == "proceed"  # the final decision comes last
    total = SERIES * PER_SERIES
    assert results[0]["instances_received"] == results[0]["instances_released"] == total
    assert dlq == []
    rows = _job_rows(db)
    assert len(rows) == 1 and rows[0][1] == "released" and rows[0][2] >= 2  # resumed once
    out = clean_orthanc.dest.dicomweb().search_for_instances(results[0]["deidentified_study_uid"])
    assert len(out) == clean_orthanc.dest.instance_count() == SERIES * PER_SERIES
