"""The embedded daemon end to end: C-STORE in, de-identified files + decision/results out.

Runs the daemon in this process (embedded mode, no Kafka), sends ``--rounds`` copies of a
synthetic corpus (fresh UIDs per round) to its C-STORE landing zone from a sender thread, and
reports, as one JSON object (stdout and bench/results/daemon.json):

- ``studies_per_hour`` / ``instances_per_s``: finished jobs over the wall time from the first
  C-STORE to the last results event;
- ``decision_latency_s`` p50/p99: job admission (after the quiet period) to decision;
- ``e2e_latency_s`` p50/p99: job admission to results;
- ``loop_lag_s`` p99: how late the event loop woke a 20 ms timer while the jobs ran;
- ``pixels``: pixel PHI totals from the results events (``--pixels auto|always`` runs the OCR
  redactor on every instance the policy scans, so the latencies above include pixel work).

The corpus is generated once by ``dxai.synth`` and cached in the temp folder.

``--ct`` measures the CT workload instead (JSON to stdout and bench/results/daemon_ct.json):
``--ct-studies`` studies of ``--ct-slices`` axial CT slices (512 x 512, no burned-in text) go
through one daemon with ``deid.pixels: never`` and then through a fresh one with ``auto``; it
reports each wall time, their ratio (auto / never), and the jobs whose decision was taken at
the decision deadline (a ``deferred`` decision was sent).  Then one more study, whose series
has PHI burned into one random slice in the middle only, goes through the ``auto`` daemon: the
report says whether that slice's output lost its text (every glyph covered) and how many
instances were OCRed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pydicom
from pydicom.uid import generate_uid
from pynetdicom import AE

from dxai.configs.schema.root import DxaiConfig
from dxai.daemon.app import DaemonHandle, run_daemon
from dxai.observability.metrics import Sensor

RESULTS = Path(__file__).resolve().parent / "results" / "daemon.json"
CT_RESULTS = Path(__file__).resolve().parent / "results" / "daemon_ct.json"
_UID_TAGS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


def corpus(seed: int, patients: int) -> list[Path]:
    """The cached synthetic corpus (generated on first use)."""
    root = Path(tempfile.gettempdir()) / f"dxai-bench-corpus-{seed}-{patients}"
    if not (root / "ground_truth.json").exists():
        from dxai.synth import generate_corpus

        generate_corpus(root, seed=seed, studies=patients, small=True)
    return sorted(root.rglob("*.dcm"))


def _renamed(ds: pydicom.Dataset, round_no: int) -> pydicom.Dataset:
    for tag in _UID_TAGS:
        setattr(ds, tag, generate_uid(entropy_srcs=[str(round_no), str(ds.get(tag))]))
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def send_rounds(port: int, files: list[Path], rounds: int, sent: list[float]) -> set[str]:
    """C-STORE every file ``rounds`` times with fresh UIDs (blocking; sender thread)."""
    heads = [pydicom.dcmread(p, stop_before_pixels=True) for p in files]
    studies: set[str] = set()
    ae = AE(ae_title="BENCH")
    for cx in sorted({(str(d.SOPClassUID), str(d.file_meta.TransferSyntaxUID)) for d in heads}):
        ae.add_requested_context(*cx)
    for round_no in range(rounds):
        assoc = ae.associate("127.0.0.1", port, ae_title="DXAI")
        try:
            for path in files:
                out = _renamed(pydicom.dcmread(path), round_no)
                studies.add(str(out.StudyInstanceUID))
                assoc.send_c_store(out)
                sent.append(time.time())
        finally:
            assoc.release()
    return studies


def pct(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (0..1) of ``values``; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 4)


async def lag_probe(samples: list[float], interval_s: float = 0.02) -> None:
    """Record how late the loop wakes a timer, until cancelled."""
    while True:
        started = time.monotonic()
        await asyncio.sleep(interval_s)
        samples.append(max(0.0, time.monotonic() - started - interval_s))


def bench_config(data_dir: Path, workers: int, quiet_s: float, pixels: str) -> DxaiConfig:
    """Embedded mode on free ports, ``deid.pixels`` = ``pixels``, outputs to a folder."""
    return DxaiConfig.model_validate(
        {
            "mode": "embedded",
            "state": {"data_dir": str(data_dir)},
            "deid": {"pixels": pixels},
            "pipeline": {"cpu_workers": workers},
            "embedded": {
                "dicom_port": 0,
                "http_port": 0,
                "mllp_port": 0,
                "study_quiet_period_s": quiet_s,
            },
            "metrics": {"enabled": False},
        }
    )


async def job_rows(handle: DaemonHandle) -> list[tuple[float, str, str]]:
    """(created_at, decision_json, results_json) of every finished job."""
    sql = (
        "SELECT created_at, decision_json, results_json FROM jobs "
        "WHERE decision_sent = 1 AND results_sent = 1"
    )
    async with handle.store.db.execute(sql) as cur:
        return [(float(a), str(b), str(c)) for a, b, c in await cur.fetchall()]


async def wait_jobs(handle: DaemonHandle, count: int, timeout_s: float) -> list[Any]:
    """Poll the job store until ``count`` jobs finished (or the deadline passed)."""
    end = time.monotonic() + timeout_s
    rows = await job_rows(handle)
    while len(rows) < count and time.monotonic() < end:
        await asyncio.sleep(0.1)
        rows = await job_rows(handle)
    return rows


async def wait_study(handle: DaemonHandle, study: str, timeout_s: float) -> dict[str, Any]:
    """Poll the job store until the job of ``study`` finished; its results."""
    end = time.monotonic() + timeout_s
    while True:
        rows = await job_rows(handle)
        found = [r for r in (json.loads(row[2]) for row in rows) if r["study_uid"] == study]
        if found:
            return dict(found[0])
        if time.monotonic() > end:
            raise RuntimeError(f"study {study} not finished ({len(rows)} jobs finished)")
        await asyncio.sleep(0.1)


def summarise(rows: list[Any], started: float, lag: list[float], studies: int) -> dict[str, Any]:
    """The JSON report from the finished jobs."""
    decided, finished, instances = [], [], 0
    pixels: dict[str, int] = {}
    last = started
    for created, decision_json, results_json in rows:
        decision, results = json.loads(decision_json), json.loads(results_json)
        for task in (t for t in results["tasks"] if t["task"] == "pixels"):
            for name, value in task["counts"].items():
                pixels[name] = pixels.get(name, 0) + int(value)
        decided_at = datetime.fromisoformat(decision["decided_at"]).timestamp()
        finished_at = datetime.fromisoformat(results["finished_at"]).timestamp()
        decided.append(decided_at - created)
        finished.append(finished_at - created)
        instances += int(results["instances_received"])
        last = max(last, finished_at)
    wall = max(1e-6, last - started)
    return {
        "studies_sent": studies,
        "studies_finished": len(rows),
        "instances": instances,
        "wall_s": round(wall, 2),
        "studies_per_hour": round(len(rows) / wall * 3600, 1),
        "instances_per_s": round(instances / wall, 2),
        "decision_latency_s": {"p50": pct(decided, 0.5), "p99": pct(decided, 0.99)},
        "e2e_latency_s": {"p50": pct(finished, 0.5), "p99": pct(finished, 0.99)},
        "loop_lag_s": {"p50": pct(lag, 0.5), "p99": pct(lag, 0.99), "max": pct(lag, 1.0)},
        "loop_lag_samples": len(lag),
        "pixels": pixels or None,
        "decisions": sorted(json.loads(d)["decision"] for _c, d, _r in rows),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Start the daemon, send the corpus, wait for every job, stop; the report."""
    files = await asyncio.to_thread(corpus, args.seed, args.patients)
    with tempfile.TemporaryDirectory(prefix="dxai-bench-") as tmp:
        config = bench_config(Path(tmp), args.workers, args.quiet, args.pixels)
        stop = asyncio.Event()
        ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
        sensor = Sensor()
        daemon = asyncio.create_task(run_daemon(config, stop, sensor, ready=ready.set_result))
        handle = await asyncio.wait_for(ready, 60)
        assert handle.ports is not None
        lag: list[float] = []
        probe = asyncio.create_task(lag_probe(lag))
        sent: list[float] = []
        started = time.time()
        studies = await asyncio.to_thread(send_rounds, handle.ports.dicom, files, args.rounds, sent)
        rows = await wait_jobs(handle, len(studies), args.timeout)
        probe.cancel()
        stop.set()
        await daemon
    report = summarise(rows, started, lag, len(studies))
    report |= {
        "mode": "embedded",
        "sink": "folder",
        "work_per_instance": "header de-identification + verify + re-encode"
        + ("" if args.pixels == "never" else f" + pixel PHI OCR/redaction ({args.pixels})"),
        "cpu_workers": args.workers,
        "quiet_period_s": args.quiet,
        "send_s": round(sent[-1] - started, 2) if sent else None,
        "cpus": os.cpu_count(),
        "threads_alive": threading.active_count(),
        "batches": batch_stats(sensor),
    }
    return report


def ct_workload(seed: int, studies: int, slices: int) -> tuple[list[Path], list[Path], Path]:
    """The cached CT workload: clean studies' files, the text study's files, its truth file."""
    root = Path(tempfile.gettempdir()) / f"dxai-bench-ct-{seed}-{studies}-{slices}"
    truth = root / "text_truth.json"
    if not truth.exists():
        from dxai.synth.series import ct_series

        for study in range(studies + 1):
            text_on = {random.Random(seed).randrange(slices // 4, 3 * slices // 4)}
            series = ct_series(seed, study, slices, text_on=text_on if study == studies else ())
            folder = root / ("text" if study == studies else f"s{study}")
            folder.mkdir(parents=True, exist_ok=True)
            for n, item in enumerate(series):
                item.dataset.save_as(folder / f"{n:04d}.dcm", enforce_file_format=True)
                if item.burned:
                    records = [b.model_dump() for b in item.burned]
                    truth.write_text(json.dumps({"slice": n, "burned": records}), "utf-8")
    clean = sorted(p for s in range(studies) for p in (root / f"s{s}").glob("*.dcm"))
    return clean, sorted((root / "text").glob("*.dcm")), truth


async def deferred_count(handle: DaemonHandle) -> int:
    """Jobs whose decision deadline passed with work still running (a ``deferred`` sent)."""
    sql = "SELECT COUNT(*) FROM jobs WHERE deferred_json IS NOT NULL"
    async with handle.store.db.execute(sql) as cur:
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def ct_pass(
    args: argparse.Namespace, pixels: str, files: list[Path], text: tuple[list[Path], Path] | None
) -> dict[str, Any]:
    """One daemon (``deid.pixels`` = ``pixels``): send ``files`` (timed), then ``text``."""
    with tempfile.TemporaryDirectory(prefix="dxai-bench-ct-") as tmp:
        config = bench_config(Path(tmp), args.workers, args.quiet, pixels)
        stop = asyncio.Event()
        ready: asyncio.Future[DaemonHandle] = asyncio.get_running_loop().create_future()
        daemon = asyncio.create_task(run_daemon(config, stop, Sensor(), ready=ready.set_result))
        handle = await asyncio.wait_for(ready, 60)
        assert handle.ports is not None
        lag: list[float] = []
        probe = asyncio.create_task(lag_probe(lag))
        sent: list[float] = []
        started = time.time()
        studies = await asyncio.to_thread(send_rounds, handle.ports.dicom, files, 1, sent)
        rows = await wait_jobs(handle, len(studies), args.timeout)
        probe.cancel()
        report = summarise(rows, started, lag, len(studies))
        report["deferred_decisions"] = await deferred_count(handle)
        if text is not None:
            report["text"] = await ct_text(args, handle, config, text)
        # more jobs than studies sent: a study arrived as several jobs (split)
        report["jobs_finished"] = len(await job_rows(handle))
        report["studies_sent_total"] = len(studies) + (text is not None)
        stop.set()
        await daemon
    return report


async def ct_text(
    args: argparse.Namespace,
    handle: DaemonHandle,
    config: DxaiConfig,
    text: tuple[list[Path], Path],
) -> dict[str, Any]:
    """Send the study with text in one middle slice; was that slice's text removed?"""
    files, truth_path = text
    assert handle.ports is not None
    (study,) = await asyncio.to_thread(send_rounds, handle.ports.dicom, files, 1, [])
    truth = json.loads(truth_path.read_text("utf-8"))
    # the text study's own results (not the newest row: creation times can tie or interleave)
    results = await wait_study(handle, study, args.timeout)
    pixels = next(t for t in results["tasks"] if t["task"] == "pixels")["counts"]
    folder = config.results_folder() / "instances" / str(results["deidentified_study_uid"])
    score = await asyncio.to_thread(ct_text_score, folder, files[truth["slice"]], truth)
    return {"slice": truth["slice"], "pixel_counts": pixels, **score}


def ct_text_score(folder: Path, source: Path, truth: dict[str, Any]) -> dict[str, Any]:
    """Score the released output of the text slice (the study's output in ``folder`` with its
    InstanceNumber) against the truth: every PHI glyph covered?"""
    from dxai.actors.pixels.codec import decode
    from dxai.actors.pixels.evaluate import score_frames, truth_boxes
    from dxai.synth.manifest import BurnedInText

    number = int(pydicom.dcmread(source, stop_before_pixels=True).InstanceNumber)
    outputs = folder.rglob("*.dcm")
    for path in outputs:
        if int(pydicom.dcmread(path, stop_before_pixels=True).InstanceNumber) == number:
            before, after = decode(pydicom.dcmread(source)).frames, decode(pydicom.dcmread(path))
            records = [BurnedInText.model_validate(b) for b in truth["burned"]]
            score = score_frames(before, after.frames, truth_boxes(records))
            found = (score.phi_found, score.phi_total)
            return {"released": True, "phi_found": found, "redacted": found[0] == found[1] > 0}
    return {"released": False, "phi_found": None, "redacted": False}


async def run_ct(args: argparse.Namespace) -> dict[str, Any]:
    """``--ct``: the clean CT studies through ``never`` then ``auto``; the text study after."""
    clean, text_files, truth = await asyncio.to_thread(
        ct_workload, args.seed, args.ct_studies, args.ct_slices
    )
    never = await ct_pass(args, "never", clean, None)
    auto = await ct_pass(args, "auto", clean, (text_files, truth))
    text = auto.pop("text")
    return {
        "workload": f"{args.ct_studies} studies x {args.ct_slices} CT slices 512x512, no text",
        "cpu_workers": args.workers,
        "cpus": os.cpu_count(),
        "wall_s": {"never": never["wall_s"], "auto": auto["wall_s"]},
        "ratio_auto_never": round(auto["wall_s"] / max(never["wall_s"], 1e-6), 3),
        "deferred_decisions": {
            "never": never["deferred_decisions"],
            "auto": auto["deferred_decisions"],
        },
        "text_slice": text,
        "runs": {"never": never, "auto": auto},
    }


def batch_stats(sensor: Sensor) -> dict[str, dict[str, float]]:
    """Per model: batches run by the daemon's in-process batcher and their mean size."""
    out: dict[str, dict[str, float]] = {}
    for model in ("ppocr_det", "ppocr_rec"):
        labels = {"model": model}
        count = sensor.registry.get_sample_value("dxai_batch_size_count", labels) or 0.0
        total = sensor.registry.get_sample_value("dxai_batch_size_sum", labels) or 0.0
        out[model] = {"batches": count, "mean_size": round(total / count, 2) if count else 0.0}
    return out


def main() -> int:
    """Parse arguments, run, print and save the JSON report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=2, help="synthetic patients in corpus")
    parser.add_argument("--rounds", type=int, default=3, help="copies of the corpus to send")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workers", type=int, default=2, help="pipeline.cpu_workers")
    parser.add_argument("--quiet", type=float, default=0.5, help="study quiet period (s)")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--pixels", choices=("never", "auto", "always"), default="auto")
    parser.add_argument("--ct", action="store_true", help="CT studies: never vs auto")
    parser.add_argument("--ct-studies", type=int, default=6)
    parser.add_argument("--ct-slices", type=int, default=100)
    args = parser.parse_args()
    if args.ct:
        report = asyncio.run(run_ct(args))
        ok = all(r["studies_finished"] == r["studies_sent"] for r in report["runs"].values())
        return _save(report, CT_RESULTS, ok and report["text_slice"]["redacted"])
    report = asyncio.run(run(args))
    return _save(report, RESULTS, report["studies_finished"] == report["studies_sent"])


def _save(report: dict[str, Any], path: Path, ok: bool) -> int:
    """Print the JSON report, write it to ``path``; the exit status."""
    text = json.dumps(report, indent=1)
    print(text)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n", encoding="utf-8")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
