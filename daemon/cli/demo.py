"""``dxai demo``: run the embedded daemon in-process, C-STORE a study to it, report the outcome."""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import anyio.to_thread
import pydicom
import yaml
from pydicom.errors import InvalidDicomError as PydicomInvalid

from dxai.configs.errors import ServiceUnavailableError
from dxai.configs.schema.root import DxaiConfig
from dxai.configs.schema.services import DimseEndpoint
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.daemon.gateways.dimse import c_store_blocking
from dxai.daemon.jobs import JobStore
from dxai.observability.metrics import Sensor


@dataclass
class DemoReport:
    """What the demo saw: what was sent, and one summary per finished job."""

    data_dir: Path
    sent: int = 0
    refused: int = 0
    studies: int = 0
    jobs: list[dict[str, Any]] = field(default_factory=list)
    timed_out: bool = False


def demo_config(data_dir: Path, quiet_s: float, base: Path | None = None) -> DxaiConfig:
    """The embedded configuration (``base`` or the packaged local.yaml) on free local ports."""
    if base is not None:
        data = yaml.safe_load(base.read_text(encoding="utf-8")) or {}
    else:
        text = resources.files("dxai.configs").joinpath("local.yaml").read_text("utf-8")
        data = yaml.safe_load(text) or {}
    data["mode"] = "embedded"
    data.setdefault("state", {})["data_dir"] = str(data_dir)
    emb = data.setdefault("embedded", {})
    emb.update(dicom_port=0, http_port=0, mllp_port=0, study_quiet_period_s=quiet_s)
    emb["bind_host"] = "127.0.0.1"
    data["metrics"] = {"enabled": False}
    return DxaiConfig.model_validate(data)


def read_study_files(folder: Path) -> tuple[list[bytes], set[str]]:
    """Every DICOM file under ``folder`` (bytes) and the Study Instance UIDs seen (blocking)."""
    files: list[bytes] = []
    studies: set[str] = set()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except (PydicomInvalid, OSError, ValueError, EOFError):
            continue
        files.append(raw)
        studies.add(str(ds.StudyInstanceUID))
    return files, studies


def sample_study(data_dir: Path, given: Path | None) -> Path:
    """The study folder to send: ``given``, ./tests/data/sample-study, or a synthetic one."""
    if given is not None:
        return given
    local = Path("tests/data/sample-study")
    if local.is_dir():
        return local
    from dxai.synth import generate_corpus

    out = data_dir / "sample-study"
    generate_corpus(out, seed=1, studies=1, small=True)
    return out


async def finished_jobs(store: JobStore, studies: set[str]) -> list[dict[str, Any]]:
    """Summaries of the finished jobs (final state, outputs sent) of ``studies``."""
    marks = ",".join("?" * len(studies))
    sql = (
        "SELECT exchange_job_id, study_uid, state, decision_json, results_json FROM jobs "
        f"WHERE study_uid IN ({marks}) AND decision_sent = 1 AND results_sent = 1 "
        "AND state NOT IN ('received', 'fetching', 'processing') ORDER BY created_at"
    )
    async with store.db.execute(sql, tuple(sorted(studies))) as cur:
        rows = await cur.fetchall()
    out = []
    for job_id, study_uid, state, decision_json, results_json in rows:
        decision = json.loads(decision_json)
        results = json.loads(results_json)
        out.append(
            {
                "job": job_id,
                "study_uid": study_uid,
                "state": state,
                "decision": decision["decision"],
                "reasons": [r["code"] for r in decision["reasons"]],
                "received": results["instances_received"],
                "released": results["instances_released"],
                "held": results["instances_held"],
                "deidentified_study_uid": results["deidentified_study_uid"],
                "job_key": results["job_key"],
            }
        )
    return out


async def _wait_ready(
    ready: asyncio.Future[DaemonHandle], daemon: asyncio.Task[None]
) -> DaemonHandle:
    waiting: set[asyncio.Future[Any]] = {ready, daemon}
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not ready.done():
        daemon.result()  # re-raises the daemon's startup error
        raise ServiceUnavailableError("the embedded daemon stopped before it was ready")
    return ready.result()


async def _send(
    handle: DaemonHandle, config: DxaiConfig, study: Path, report: DemoReport
) -> set[str]:
    files, studies = await anyio.to_thread.run_sync(read_study_files, study)
    assert handle.ports is not None
    peer = DimseEndpoint(
        ae_title=config.embedded.ae_title, host="127.0.0.1", port=handle.ports.dicom
    )
    stored = await anyio.to_thread.run_sync(c_store_blocking, peer, "DXAIDEMO", files)
    report.sent, report.refused, report.studies = (
        stored.stored,
        len(stored.failed_uids),
        len(studies),
    )
    return studies


async def run_demo(
    config: DxaiConfig, study: Path, timeout_s: float, sensor: Sensor | None = None
) -> DemoReport:
    """Start the daemon, send ``study`` by C-STORE, wait for every job, stop; the report.

    ``sensor`` (default: a fresh one) records the daemon's metrics, batcher ones included.
    """
    report = DemoReport(data_dir=Path(config.state.data_dir))
    stop = asyncio.Event()
    ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
    sensor = sensor or Sensor()
    daemon = asyncio.create_task(run_daemon(config, stop, sensor, ready=ready.set_result))
    try:
        handle = await _wait_ready(ready, daemon)
        studies = await _send(handle, config, study, report)
        deadline = time.monotonic() + timeout_s
        while len(report.jobs) < len(studies):
            if time.monotonic() > deadline:
                report.timed_out = True
                break
            await asyncio.sleep(0.2)
            report.jobs = await finished_jobs(handle.store, studies)
    finally:
        stop.set()
        await daemon
    return report
