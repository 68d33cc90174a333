"""What a chaos run keeps when a check fails (or with ``CHAOS_KEEP=1``): the evidence to explain
it after the run's private services are gone.

- ``destination_studies``: every study at the destination with its StudyInstanceUID and
  instance count (asked before the private Orthanc is torn down);
- ``unexpected``: the destination studies no ``released`` results event accounts for (unknown
  UID, or more instances than released), each traced back to its job: the de-identified study
  UID is recomputed from each uploaded study UID with the daemon's own key
  (``<data_dir>/keys/deid.key``, the only dxai code the harness uses: ``keyed_uid``), then that
  job's decisions, results, audit records (``audit.sqlite``) and daemon log lines are attached;
- ``keep_run``: the run folder (daemon log, configs, job store, audit log; not the staging
  area) copied to ``CHAOS_KEEP_DIR`` (default ``/tmp/chaos-keep-<seed>``) with every output
  event as JSON lines and the evidence itself.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import httpx

LOG_LINES_PER_JOB = 40


def destination_studies(dest_url: str) -> list[dict[str, Any]]:
    """Every study at the destination: its StudyInstanceUID and instance count."""
    out = []
    with httpx.Client(base_url=dest_url, timeout=60) as http:
        for orthanc_id in http.get("/studies").raise_for_status().json():
            tags = http.get(f"/studies/{orthanc_id}").raise_for_status().json()["MainDicomTags"]
            stats = http.get(f"/studies/{orthanc_id}/statistics").raise_for_status().json()
            out.append(
                {
                    "study_uid": tags.get("StudyInstanceUID", ""),
                    "instances": int(stats["CountInstances"]),
                }
            )
    return sorted(out, key=lambda s: str(s["study_uid"]))


def output_uid_to_job(data_dir: Path, studies: dict[str, str]) -> dict[str, str]:
    """De-identified study UID -> job id, for ``studies`` (original UID -> job id), recomputed
    with the daemon's generated key (empty when the key is missing)."""
    from dxai.actors.deid.keys import default_key_path, read_key
    from dxai.actors.deid.pseudonym import keyed_uid

    path = default_key_path(data_dir)
    if not path.exists():
        return {}
    key = read_key(path)
    return {keyed_uid(key, uid): job for uid, job in studies.items()}


def unexpected(
    studies: list[dict[str, Any]], released: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Destination studies with more instances than any ``released`` results event says."""
    counts = {
        str(r["deidentified_study_uid"]): int(r["instances_released"]) for r in released.values()
    }
    return [s for s in studies if s["instances"] > counts.get(str(s["study_uid"]), 0)]


def _audit(audit_path: Path, job_key: str) -> list[dict[str, Any]]:
    if not job_key or not audit_path.exists():
        return []
    con = sqlite3.connect(f"file:{audit_path}?mode=ro", uri=True)
    try:
        sql = "SELECT seq, ts, kind, data FROM audit WHERE job_key = ? ORDER BY seq"
        rows = con.execute(sql, (job_key,)).fetchall()
    finally:
        con.close()
    return [{"seq": s, "ts": ts, "kind": k, "data": json.loads(d)} for s, ts, k, d in rows]


def _log_lines(log: Path, short_key: str) -> list[str]:
    """The daemon log lines naming the job, each after the incarnation marker it ran in."""
    if not short_key or not log.exists():
        return []
    start, out = "", []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("===== start"):
            start = line
        elif short_key in line:
            out.append(f"[{start.strip('= ')}] {line}")
    return out[-LOG_LINES_PER_JOB:]


def job_story(
    job_id: str, outputs: dict[str, list[Any]], run_dir: Path, data_dir: Path
) -> dict[str, Any]:
    """One job's decisions, results, audit records and log lines."""
    decisions = [d for d in outputs["decisions"] if d["exchange_job_id"] == job_id]
    results = [r for r in outputs["results"] if r["exchange_job_id"] == job_id]
    key = next((e["job_key"] for e in (*decisions, *results) if e.get("job_key")), "")
    return {
        "job": job_id,
        "job_key": key,
        "decisions": [
            {"decision": d["decision"], "reasons": [r["code"] for r in d["reasons"]]}
            for d in decisions
        ],
        "results": [
            {k: r.get(k) for k in ("state", "instances_received", "instances_released")}
            for r in results
        ],
        "audit": _audit(data_dir / "audit.sqlite", key),
        "log": _log_lines(run_dir / "daemon.log", key[:16]),
    }


def evidence(
    dest_url: str,
    outputs: dict[str, list[Any]],
    released: dict[str, dict[str, Any]],
    studies: dict[str, str],
    run_dir: Path,
) -> dict[str, Any]:
    """The destination's studies, the unexpected ones and the story of their jobs."""
    data_dir = run_dir / "state"
    listing = destination_studies(dest_url)
    jobs = output_uid_to_job(data_dir, studies)
    found = []
    for study in unexpected(listing, released):
        job = jobs.get(str(study["study_uid"]))
        story = job_story(job, outputs, run_dir, data_dir) if job else None
        found.append({**study, "job": job, "story": story})
    return {"destination_studies": listing, "unexpected_studies": found}


def keep_run(
    run_dir: Path, keep_to: Path, outputs: dict[str, list[Any]], found: dict[str, Any]
) -> Path:
    """Copy the run folder (without the staging area) and write the outputs and evidence."""
    if keep_to.exists():
        shutil.rmtree(keep_to)
    shutil.copytree(run_dir, keep_to, ignore=shutil.ignore_patterns("staging"))
    for name in ("decisions", "results"):
        lines = [json.dumps(e, sort_keys=True) for e in outputs[name]]
        (keep_to / f"{name}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    text = json.dumps(found, indent=1, default=str) + "\n"
    (keep_to / "evidence.json").write_text(text, encoding="utf-8")
    return keep_to
