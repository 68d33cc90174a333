"""The transfer path between two real Orthancs: the daemon against a plain copy, and peak memory.

Needs the test services (``bash scripts/services/up.sh``).  Two measurements, one JSON object
(stdout and bench/results/transfer.json):

- ``throughput``: ``--studies`` CT studies of ``--slices`` 512x512 slices are put in the source
  Orthanc; the *ceiling* copies them to the destination with a plain concurrent WADO-RS ->
  STOW-RS relay (each series' multipart answer forwarded as the STOW body: no parsing at all);
  then the daemon (``dxai run``, embedded mode, header path: ``deid.pixels: never``) gets one
  webhook event per study and de-identifies them into the same destination.  ``ratio`` is
  ceiling time / daemon time (1.0: the daemon is as fast as a copy that does nothing);
  ``ratio_cpu_bound`` is the ratio the daemon path could reach at best on this machine with
  the CPU it used (daemon and Orthancs together, spread over every core).
- ``big_series``: one study with a single series of about ``--big-mb`` MiB (instances of
  ``--big-instance-mb`` MiB) goes through the daemon; ``peak_rss_mb`` is the daemon process's
  VmHWM (peak resident set) read from /proc when the job has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import yaml
from _services import clear, cpu_s, orthanc_url, orthancs_cpu_s, save
from pydicom.data import get_testdata_file
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ACCEPT = 'multipart/related; type="application/dicom"; transfer-syntax=*'


def make_instance(study: str, series: str, number: int, rows: int, cols: int) -> bytes:
    """A CT instance with ``rows`` x ``cols`` 16-bit pixels and fake PHI in the header."""
    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))  # type: ignore[arg-type]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.InstanceNumber = number
    ds.Rows, ds.Columns = rows, cols
    pixels = np.random.default_rng(number).integers(0, 4000, (rows, cols), dtype=np.uint16)
    ds.PixelData = pixels.tobytes()
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


async def upload(base: str, study: str, count: int, rows: int, cols: int) -> int:
    """Put one series of ``count`` instances of ``study`` into the Orthanc at ``base``."""
    series, sent = generate_uid(), 0
    async with httpx.AsyncClient(base_url=base, timeout=120) as http:
        for number in range(1, count + 1):
            data = await asyncio.to_thread(make_instance, study, series, number, rows, cols)
            (await http.post("/instances", content=data)).raise_for_status()
            sent += len(data)
    return sent


async def relay_study(http: httpx.AsyncClient, src: str, dst: str, study: str) -> None:
    """The ceiling: each series' WADO-RS multipart answer is sent as-is as a STOW-RS body."""
    series = (await http.get(f"{src}/dicom-web/studies/{study}/series")).raise_for_status()
    for item in series.json():
        uid = item["0020000E"]["Value"][0]
        got = await http.get(
            f"{src}/dicom-web/studies/{study}/series/{uid}", headers={"Accept": ACCEPT}
        )
        got.raise_for_status()
        ctype = got.headers["content-type"]
        sent = await http.post(
            f"{dst}/dicom-web/studies", content=got.content, headers={"Content-Type": ctype}
        )
        sent.raise_for_status()


async def ceiling(src: str, dst: str, studies: list[str]) -> dict[str, float]:
    """Seconds (and CPU seconds: relay, Orthancs) for the plain concurrent relay of every study."""
    started, cpu, orthancs = time.monotonic(), time.process_time(), orthancs_cpu_s()
    async with httpx.AsyncClient(timeout=600) as http:
        await asyncio.gather(*(relay_study(http, src, dst, s) for s in studies))
    return {
        "seconds": time.monotonic() - started,
        "cpu_s": time.process_time() - cpu,
        "orthancs_cpu_s": orthancs_cpu_s() - orthancs,
    }


def daemon_config(tmp: Path, src: str, dst: str, port: int) -> Path:
    """An embedded daemon on the header path, fetching from ``src`` and storing to ``dst``."""
    data = {
        "mode": "embedded",
        "state": {"data_dir": str(tmp / "state")},
        "deid": {"pixels": "never"},
        "pipeline": {"decision_deadline_s": 600, "job_deadline_s": 3600},
        "embedded": {"dicom_port": 0, "http_port": port, "mllp_port": 0},
        "source_dicomweb": {"base_url": f"{src}/dicom-web", "timeout_s": 600},
        "destination_dicomweb": {"base_url": f"{dst}/dicom-web", "timeout_s": 600},
        "metrics": {"enabled": False},
    }
    path = tmp / "dxai.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def peak_rss_mb(pid: int) -> float:
    """VmHWM (peak resident set) of process ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def through_daemon(tmp: Path, src: str, dst: str, studies: list[str]) -> dict[str, Any]:
    """Run ``dxai run``, post one event per study, wait for every results file."""
    port = 18000 + (int(time.time()) % 1000)
    config = daemon_config(tmp, src, dst, port)
    log = (tmp / "daemon.log").open("wb")
    cmd = [sys.executable, "-c", "from dxai.daemon.cli import entry; entry()", "run"]
    argv = [*cmd, "--config", str(config)]
    proc = await asyncio.to_thread(subprocess.Popen, argv, stdout=log, stderr=log)
    try:
        return await _drive(proc, tmp, port, studies)
    finally:
        proc.terminate()
        proc.wait(120)
        log.close()


async def _drive(
    proc: subprocess.Popen[bytes], tmp: Path, port: int, studies: list[str]
) -> dict[str, Any]:
    results = tmp / "state" / "results" / "results"
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        end = time.monotonic() + 120
        while True:
            try:
                (await http.get("/healthz")).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError("the daemon did not start") from None
                await asyncio.sleep(0.2)
        started, cpu_before, orthancs = time.monotonic(), cpu_s(proc.pid), orthancs_cpu_s()
        for n, study in enumerate(studies):
            event = {
                "event_type": "study_received",
                "study_uid": study,
                "destination": "dest",
                "exchange_job_id": f"bench-{n}-{int(started)}",
                "source": {"kind": "dicomweb"},
            }
            (await http.post("/events", json=event)).raise_for_status()
    while len(list(results.glob("*.json"))) < len(studies):
        if proc.poll() is not None:
            raise RuntimeError("the daemon exited")
        await asyncio.sleep(0.1)
    seconds = time.monotonic() - started
    orthancs = orthancs_cpu_s() - orthancs
    states = [json.loads(p.read_text())["state"] for p in results.glob("*.json")]
    return {
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu_s(proc.pid) - cpu_before, 2),
        "orthancs_cpu_s": round(orthancs, 2),
        "states": states,
        "peak_rss_mb": peak_rss_mb(proc.pid),
    }


async def throughput(args: argparse.Namespace, src: str, dst: str) -> dict[str, Any]:
    """Ceiling relay and daemon over the same studies, side by side."""
    clear(src)
    studies = [generate_uid() for _ in range(args.studies)]
    size = sum([await upload(src, s, args.slices, 512, 512) for s in studies])
    clear(dst)
    plain = await ceiling(src, dst, studies)
    clear(dst)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = await through_daemon(Path(tmp), src, dst, studies)
    return {
        "studies": args.studies,
        "instances": args.studies * args.slices,
        "bytes": size,
        "ceiling_s": round(plain["seconds"], 2),
        "ceiling_cpu_s": {
            "relay": round(plain["cpu_s"], 2),
            "orthancs": round(plain["orthancs_cpu_s"], 2),
        },
        "daemon_s": daemon["seconds"],
        "daemon_cpu_s": {"daemon": daemon["cpu_s"], "orthancs": daemon["orthancs_cpu_s"]},
        "ratio": round(plain["seconds"] / daemon["seconds"], 3),
        # the least time the daemon path could take here with the CPU it measured (daemon and
        # Orthancs), were every core busy all the time: what this machine allows at best
        "ratio_cpu_bound": round(plain["seconds"] / _cpu_bound_s(daemon), 3),
        "states": sorted(set(daemon["states"])),
        "cores": os.cpu_count(),
        "goal": "ratio >= 0.9",
    }


def _cpu_bound_s(daemon: dict[str, Any]) -> float:
    """CPU seconds of the daemon run (daemon and Orthancs) spread over every core."""
    return (daemon["cpu_s"] + daemon["orthancs_cpu_s"]) / (os.cpu_count() or 1)


async def big_series(args: argparse.Namespace, src: str, dst: str) -> dict[str, Any]:
    """One series of about ``--big-mb`` MiB through the daemon; its peak RSS."""
    clear(src)
    clear(dst)
    study = generate_uid()
    cols = args.big_instance_mb * 1024 * 1024 // (2 * 2048)
    count = max(1, args.big_mb // args.big_instance_mb)
    size = await upload(src, study, count, 2048, cols)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = await through_daemon(Path(tmp), src, dst, [study])
    return {
        "instances": count,
        "series_mb": round(size / 1024**2),
        "daemon_s": daemon["seconds"],
        "states": daemon["states"],
        "peak_rss_mb": round(daemon["peak_rss_mb"]),
        "goal": "peak_rss_mb < 1024",
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Both measurements (the big series unless ``--skip-big``)."""
    src, dst = orthanc_url("source"), orthanc_url("dest")
    out: dict[str, Any] = {"benchmark": "transfer", "throughput": await throughput(args, src, dst)}
    if not args.skip_big:
        out["big_series"] = await big_series(args, src, dst)
    clear(src)
    clear(dst)
    return out


def main() -> int:
    """Parse arguments, run, print and save the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", type=int, default=6)
    parser.add_argument("--slices", type=int, default=100)
    parser.add_argument("--big-mb", type=int, default=2048)
    parser.add_argument("--big-instance-mb", type=int, default=16)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(run(args))
    save("transfer", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
