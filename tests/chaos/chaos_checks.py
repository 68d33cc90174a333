"""What a chaos run must leave behind, checked from the outside (no dxai code used here).

Outputs are read from the private broker with ``isolation_level="read_committed"``; the
destination archive is asked over REST and DICOMweb; released instances are checked for the
PHI planted in their study (``tests/integration/deid_checks.py``).
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx
from aiokafka.structs import ConsumerRecord
from deid_checks import header_text, leaked
from kafka_helpers import read_committed
from pydicom import dcmread

AGREE = {"proceed": {"released"}, "hold": {"held_for_review"}, "block": {"blocked", "failed"}}
FINAL = ("proceed", "hold", "block")


async def read_outputs(bootstrap: str, topic: str, until: float) -> dict[str, list[Any]]:
    """Decisions, results (JSON) and dead letters (records) a read_committed reader sees."""
    decisions = await read_committed(bootstrap, f"{topic}.decisions", until)
    results = await read_committed(bootstrap, f"{topic}.results", until)
    dlq = await read_committed(bootstrap, f"{topic}.dlq", until)
    return {
        "decisions": [json.loads(m.value or b"{}") for m in decisions],
        "results": [json.loads(m.value or b"{}") for m in results],
        "dlq": dlq,
    }


def _header(record: ConsumerRecord[bytes, bytes], name: str) -> str:
    for key, value in record.headers or ():
        if key == name:
            return str(value.decode(errors="replace"))
    return ""


def tally_jobs(jobs: list[str], outputs: dict[str, list[Any]]) -> dict[str, Any]:
    """Per job: exactly one results event, one final decision, at most one deferred, and the
    final decision agreeing with the results state; a released study released complete."""
    results: dict[str, list[Any]] = defaultdict(list)
    finals: dict[str, list[Any]] = defaultdict(list)
    deferred: Counter[str] = Counter()
    for r in outputs["results"]:
        results[r["exchange_job_id"]].append(r)
    for d in outputs["decisions"]:
        if d["decision"] in FINAL:
            finals[d["exchange_job_id"]].append(d)
        else:
            deferred[d["exchange_job_id"]] += 1
    wanted = set(jobs)
    bad: dict[str, list[str]] = defaultdict(list)
    for job in jobs:
        rs, fs = results[job], finals[job]
        if not rs:
            bad["lost"].append(job)
        if len(rs) > 1 or len(fs) > 1:
            bad["duplicated_outputs"].append(job)
        if rs and not fs:
            bad["results_without_final_decision"].append(job)
        if deferred[job] > 1:
            bad["more_than_one_deferred"].append(job)
        if rs and fs and any(r["state"] not in AGREE[f["decision"]] for r in rs for f in fs):
            bad["contradictions"].append(job)
        for r in rs:
            if r["state"] == "released" and not (
                r["instances_released"] == r["instances_received"] > 0
            ):
                bad["released_incomplete"].append(job)
    strangers = {r["exchange_job_id"] for r in outputs["results"]} - wanted
    return {
        "jobs": len(jobs),
        "outcomes": dict(Counter(fs[-1]["decision"] for fs in finals.values() if fs)),
        "states": dict(Counter(rs[0]["state"] for rs in results.values() if rs)),
        "deferred_decisions": sum(deferred.values()),
        "final_reasons": dict(
            Counter(r["code"] for fs in finals.values() for f in fs[-1:] for r in f["reasons"])
        ),
        "dead_letters": dict(Counter(_header(m, "dxai-dlq-error-code") for m in outputs["dlq"])),
        "unknown_jobs_with_results": sorted(strangers),
        "violations": {k: sorted(set(v)) for k, v in bad.items()},
    }


def final_decisions(outputs: dict[str, list[Any]], jobs: list[str]) -> dict[str, Any]:
    """The final decision of each of ``jobs`` with its reason codes (None: no final one)."""
    out: dict[str, Any] = {}
    for job in jobs:
        finals = [
            d
            for d in outputs["decisions"]
            if d["exchange_job_id"] == job and d["decision"] in FINAL
        ]
        out[job] = (
            {
                "decision": finals[-1]["decision"],
                "reasons": [r["code"] for r in finals[-1]["reasons"]],
            }
            if finals
            else None
        )
    return out


def released_by_job(outputs: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """The results event of each job that says instances are at the destination (the first
    one; duplicates are tallied above): ``released``, or ``held_for_review`` with
    ``instances_released`` > 0 (``partially_released``: an earlier run of the job sent them
    before a kill, docs/events.md "Delivery guarantees"; at most that many landed)."""
    out: dict[str, dict[str, Any]] = {}
    for r in outputs["results"]:
        if r["state"] == "released" or int(r.get("instances_released") or 0) > 0:
            out.setdefault(r["exchange_job_id"], r)
    return out


def check_destination(
    dest_url: str, released: dict[str, dict[str, Any]], phi: dict[str, set[str]]
) -> dict[str, Any]:
    """Per study the results say is at the destination: its instances there (count -- exact
    when released, at most the results' count when held as partially released --, unique SOP
    Instance UIDs) and their headers free of the PHI planted in its original; the archive
    holds nothing else."""
    figures: dict[str, Any] = {"instances_checked": 0, "violations": defaultdict(list)}
    figures["partially_released_jobs"] = sorted(
        job for job, r in released.items() if r["state"] != "released"
    )
    sops: Counter[str] = Counter()
    with httpx.Client(base_url=dest_url, timeout=60) as http:
        total = int(http.get("/statistics").raise_for_status().json()["CountInstances"])
        expected = 0
        for job, result in released.items():
            ids = _instances_of(http, result["deidentified_study_uid"])
            said = int(result["instances_released"])
            exact = result["state"] == "released"
            if len(ids) > said or (exact and len(ids) != said):
                figures["violations"]["count_mismatch"].append(job)
            expected += said if exact else min(len(ids), said)
            for orthanc_id in ids:
                data = http.get(f"/instances/{orthanc_id}/file").raise_for_status().content
                sop, text = _sop_and_header(data)
                sops[sop] += 1
                figures["instances_checked"] += 1
                if leaked(phi.get(result["study_uid"], set()), text):
                    figures["violations"]["phi_released"].append(job)
    figures["instances_at_destination"] = total
    figures["instances_released_per_results"] = expected
    if total != expected:
        figures["violations"]["unexpected_instances"].append(f"{total} != {expected}")
    dups = sorted(s for s, n in sops.items() if n > 1)
    if dups:
        figures["violations"]["duplicate_sop_uids"].extend(dups)
    figures["violations"] = {k: sorted(set(v)) for k, v in figures["violations"].items()}
    return figures


def _instances_of(http: httpx.Client, study_uid: str | None) -> list[str]:
    """Orthanc ids of the instances of ``study_uid`` at the destination."""
    if not study_uid:
        return []
    query = {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}}
    return list(http.post("/tools/find", json=query).raise_for_status().json())


def _sop_and_header(data: bytes) -> tuple[str, str]:
    with tempfile.NamedTemporaryFile(suffix=".dcm") as tmp:
        Path(tmp.name).write_bytes(data)
        text = header_text(Path(tmp.name))
        sop = str(dcmread(tmp.name, stop_before_pixels=True).SOPInstanceUID)
    return sop, text
