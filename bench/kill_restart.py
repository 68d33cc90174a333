"""SIGKILL the Kafka daemon mid-stream, restart it, and count what the platform sees.

Needs the test services (``bash scripts/services/up.sh``).  ``--studies`` small CT studies are
put in the source Orthanc, one event each goes to a fresh input topic, the daemon (``dxai run``,
production mode, header path) is SIGKILLed once ``--kill-after`` results have been produced,
then restarted until every job has its results.  A ``read_committed`` reader then counts, per
job: results events, final decisions (``proceed``/``hold``/``block``), deferred decisions, and
whether the final decision agrees with the results state.  One JSON object (stdout and
bench/results/kill_restart.json): ``lost`` (jobs without results), ``duplicates`` (jobs with more
than one results event or final decision), ``contradictions`` (final decision against results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import pydicom
import yaml
from _services import clear, orthanc_url, save, service
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

AGREE = {"proceed": {"released"}, "hold": {"held_for_review"}, "block": {"blocked", "failed"}}


async def upload_studies(base: str, count: int, series: int, per_series: int) -> list[str]:
    """Put ``count`` CT studies (``series`` x ``per_series`` instances) into the Orthanc."""
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    studies = []
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        for _ in range(count):
            study = generate_uid()
            for _ in range(series):
                series_uid = generate_uid()
                for _ in range(per_series):
                    template.StudyInstanceUID, template.SeriesInstanceUID = study, series_uid
                    template.SOPInstanceUID = generate_uid()
                    template.file_meta.MediaStorageSOPInstanceUID = template.SOPInstanceUID
                    buf = BytesIO()
                    template.save_as(buf, enforce_file_format=True)
                    (await http.post("/instances", content=buf.getvalue())).raise_for_status()
            studies.append(study)
    return studies


def write_config(tmp: Path, bootstrap: str, topic: str, src: str, dst: str, args: Any) -> Path:
    """A production-mode daemon on ``topic`` (and its output topics)."""
    data = {
        "mode": "production",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": "never"},
        "pipeline": {"decision_deadline_s": args.decision_deadline, "cpu_workers": 2},
        "kafka": {
            "bootstrap_servers": bootstrap,
            "group_id": f"g-{topic}",
            "input_topic": topic,
            "decisions_topic": f"{topic}.decisions",
            "results_topic": f"{topic}.results",
            "dlq_topic": f"{topic}.dlq",
            "session_timeout_ms": 6000,
            "transactional": args.transactional,
        },
        "source_dicomweb": {"base_url": f"{src}/dicom-web"},
        "destination_dicomweb": {"base_url": f"{dst}/dicom-web"},
        "metrics": {"enabled": False},
    }
    path = tmp / "daemon.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def start(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``dxai run`` in a child process."""
    code = "from dxai.daemon.cli import entry; entry()"
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code, "run", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """The partitions of ``topic`` (the broker creates it when nobody wrote to it yet)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        return [TopicPartition(topic, p) for p in sorted(await producer.partitions_for(topic))]
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every JSON value of ``topic`` a read_committed reader sees up to the end offsets."""
    parts = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        out: list[dict[str, Any]] = []
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            batch = await consumer.getmany(timeout_ms=500)
            out.extend(json.loads(m.value or b"{}") for msgs in batch.values() for m in msgs)
        return out
    finally:
        await consumer.stop()


async def produce(bootstrap: str, topic: str, studies: list[str]) -> None:
    """One event per study."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for n, study in enumerate(studies):
            event = {
                "event_type": "study_scheduled_for_exchange",
                "study_uid": study,
                "destination": "dest",
                "exchange_job_id": f"kill-{n}",
                "source": {"kind": "dicomweb"},
            }
            await producer.send_and_wait(topic, json.dumps(event).encode(), key=study.encode())
    finally:
        await producer.stop()


async def wait_results(bootstrap: str, topic: str, count: int, timeout_s: float) -> int:
    """Poll the results topic until ``count`` distinct jobs have results (or the timeout)."""
    end = time.monotonic() + timeout_s
    while True:
        jobs = {r["exchange_job_id"] for r in await read_topic(bootstrap, f"{topic}.results")}
        if len(jobs) >= count or time.monotonic() > end:
            return len(jobs)
        await asyncio.sleep(0.5)


def tally(studies: int, results: list[Any], decisions: list[Any]) -> dict[str, Any]:
    """Lost, duplicated and contradicting jobs as a read_committed platform sees them."""
    res: dict[str, list[Any]] = defaultdict(list)
    finals: dict[str, list[Any]] = defaultdict(list)
    deferred: Counter[str] = Counter()
    for r in results:
        res[r["exchange_job_id"]].append(r)
    for d in decisions:
        if d["decision"] == "deferred":
            deferred[d["exchange_job_id"]] += 1
        else:
            finals[d["exchange_job_id"]].append(d)
    contradictions = sum(
        1
        for job, rs in res.items()
        if finals[job] and rs[0]["state"] not in AGREE[finals[job][-1]["decision"]]
    )
    return {
        "jobs": studies,
        "with_results": len(res),
        "lost": studies - len(res),
        "duplicates": sum(1 for j in res if len(res[j]) > 1 or len(finals[j]) > 1),
        "contradictions": contradictions,
        "without_final_decision": sum(1 for j in res if not finals[j]),
        "deferred_decisions": sum(deferred.values()),
        "states": dict(Counter(rs[0]["state"] for rs in res.values())),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Upload, stream, kill, restart, count."""
    bootstrap = service("kafka", "bootstrap")
    src = orthanc_url("source")
    dst = orthanc_url("dest")
    clear(src)
    clear(dst)
    studies = await upload_studies(src, args.studies, args.series, args.per_series)
    topic = f"bench.kill.{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        config = write_config(Path(tmp), bootstrap, topic, src, dst, args)
        log = Path(tmp) / "daemon.log"
        first = start(config, log)
        try:
            await produce(bootstrap, topic, studies)
            seen = await wait_results(bootstrap, topic, args.kill_after, 600)
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(30)
        second = start(config, log)
        try:
            done = await wait_results(bootstrap, topic, args.studies, args.timeout)
        finally:
            second.send_signal(signal.SIGTERM)
            exit_code = second.wait(120)
    results = await read_topic(bootstrap, f"{topic}.results")
    decisions = await read_topic(bootstrap, f"{topic}.decisions")
    out = {"benchmark": "kill_restart", "killed_after_results": seen, "finished": done}
    out |= {"transactional": args.transactional, "restart_exit_code": exit_code}
    out |= tally(args.studies, results, decisions)
    clear(src)
    clear(dst)
    return out


def main() -> int:
    """Parse arguments, run, print and save the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=60)
    parser.add_argument("--series", type=int, default=2)
    parser.add_argument("--per-series", type=int, default=4)
    parser.add_argument("--kill-after", type=int, default=15)
    parser.add_argument("--decision-deadline", type=float, default=5.0)
    parser.add_argument("--transactional", action="store_true")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    save("kill_restart", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
