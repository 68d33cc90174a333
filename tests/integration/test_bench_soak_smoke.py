"""A tiny run of the soak benchmark (``bench/soak.py``): about 20 s of studies through two daemons
of one consumer group.  It checks the report's shape and that no event was lost, duplicated or
contradicted, and that the run deleted what it stored; no figure is judged (no timed assertions).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from conftest import OrthancInstance

REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 240


def _run_soak(out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    argv = [
        sys.executable,
        str(REPO / "bench" / "soak.py"),
        "--minutes",
        "0.34",
        "--rate-per-min",
        "12",
        "--ct-slices",
        "4",
        "--small",
        "--sample-s",
        "1",
        "--out",
        str(out),
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False)
    assert out.is_file(), done.stderr[-4000:]
    return done, json.loads(out.read_text(encoding="utf-8"))


def test_soak_smoke_reports_every_event(
    tmp_path: Path,
    kafka_bootstrap: str,
    orthanc_source: OrthancInstance,
    orthanc_dest: OrthancInstance,
) -> None:
    """Every produced study has its outputs; the report has every section; cleanup happened."""
    done, report = _run_soak(tmp_path / "soak.json")
    assert done.returncode == 0, done.stderr[-4000:]
    assert json.loads(done.stdout) == report
    assert "throughput:" in done.stderr and "consumer lag:" in done.stderr
    produced = report["studies"]["produced"]
    assert produced >= 3 and report["studies"]["drained"] is True
    assert set(report["studies"]["by_kind"]) <= {"ct", "us", "sc"}
    assert report["config"]["daemons"] == 2 and report["config"]["partitions"] >= 2
    outcomes = report["outcomes"]
    assert outcomes["lost"] == outcomes["duplicates"] == outcomes["contradictions"] == 0
    assert sum(outcomes["decisions"].values()) == produced
    assert sum(outcomes["states"].values()) == produced
    assert outcomes["pixels"]["scanned"] > 0  # deid.pixels auto: OCR ran on the burned-in text
    assert report["throughput"]["studies_finished"] == produced
    for key in ("decision_latency_s", "e2e_latency_s"):
        assert report[key]["n"] == produced
        assert 0 < report[key]["p50"] <= report[key]["p90"] <= report[key]["p99"]
        assert report[key]["p99"] <= report[key]["max"]
    _check_daemons(report)
    _check_cleanup(report, kafka_bootstrap, produced)


def _check_daemons(report: dict[str, Any]) -> None:
    daemons = report["daemons"]
    assert [d["client_id"] for d in daemons] == ["soak-0", "soak-1"]
    decided = 0.0
    for daemon in daemons:
        assert daemon["exit_code"] == 0
        rss = daemon["rss"]
        assert len(rss["samples"]) >= 3 and rss["max_mib"] >= rss["first_mib"] > 0
        assert daemon["cpu_s"] is not None and daemon["cpu_s"] >= 0
        decided += sum(
            v for k, v in daemon["counters"].items() if k.startswith("dxai_decisions_total")
        )
    assert decided == report["studies"]["produced"]  # each job decided once, by one daemon
    lag = report["consumer_lag"]
    assert lag["samples"] and lag["last"] == 0  # the group committed everything it consumed


def _check_cleanup(report: dict[str, Any], bootstrap: str, produced: int) -> None:
    cleanup = report["cleanup"]
    # every study the run stored is deleted now; "gone": someone emptied the shared Orthanc
    source, dest = cleanup["source_studies"], cleanup["dest_studies"]
    assert source["failed"] == dest["failed"] == 0
    assert source["deleted"] + source["gone"] == produced
    released = report["outcomes"]["states"].get("released", 0)
    assert dest["deleted"] + dest["gone"] + dest["not_found"] == released
    assert cleanup["topics_deleted"] is True
    assert asyncio.run(_topics_left(bootstrap, report["config"]["input_topic"])) == []


async def _topics_left(bootstrap: str, prefix: str) -> list[str]:
    """The run's topics the broker still lists, polled until none or a 30 s deadline."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            left = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if not left or time.monotonic() > deadline:
                return left
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
