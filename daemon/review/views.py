"""JSON-ready views of held jobs and their reviews (what ``list``, ``show`` and the API return).

Job keys, de-identified UIDs, reason codes, boxes, statuses and counts; comments only in the
detailed view, opened for a signed-in user.  No PHI.
"""

from __future__ import annotations

import json
from typing import Any

from dxai.daemon.jobs import JobRecord
from dxai.daemon.review.manifest import KeptEntry, Manifest


def job_reasons(job: JobRecord, manifest: Manifest | None) -> list[str]:
    """The reason codes of the job's decision (the manifest's when the decision is unreadable)."""
    try:
        decision = json.loads(job.decision_json or "{}")
        codes = [str(r["code"]) for r in decision.get("reasons", [])]
    except (ValueError, KeyError, TypeError, AttributeError):
        codes = []
    return codes or (list(manifest.reasons) if manifest else [])


def entry_view(entry: KeptEntry, detail: bool = False) -> dict[str, Any]:
    """One kept instance."""
    out: dict[str, Any] = {
        "sop_uid": entry.sop_uid_out,
        "status": entry.status,
        "reason": entry.reason,
        "held_reasons": list(entry.held_reasons),
        "releasable": entry.releasable,
        "verify": entry.verify.status if entry.verify else None,
        "needs_verify": entry.stale,
    }
    if detail:
        out["boxes"] = [b.model_dump() for b in entry.boxes]
        out["held_boxes"] = [b.model_dump() for b in entry.held_boxes]
        out["review_boxes"] = [b.model_dump() for b in entry.review_boxes]
        out["verify_detail"] = entry.verify.model_dump() if entry.verify else None
    else:
        out["held_boxes"] = len(entry.held_boxes)
        out["review_boxes"] = len(entry.review_boxes)
    return out


def summary(job: JobRecord, manifest: Manifest | None) -> dict[str, Any]:
    """One held job as ``dxai review list --json`` prints it."""
    held = manifest.held if manifest else []
    return {
        "job_key": job.key,
        "exchange_job_id": job.exchange_job_id,
        "state": job.state,
        "held_at": job.updated_at,
        "reasons": job_reasons(job, manifest),
        "review": manifest.status if manifest else "nothing_kept",
        "instances": [entry_view(e) for e in held],
        "instances_passed": len(manifest.instances) - len(held) if manifest else 0,
    }


def detail(job: JobRecord, manifest: Manifest | None, comments: list[dict[str, Any]]) -> dict:  # type: ignore[type-arg]
    """One job's review in full: every held instance with its boxes, and the comments."""
    out = summary(job, manifest)
    out["instances"] = [entry_view(e, detail=True) for e in (manifest.held if manifest else [])]
    out["comments"] = comments
    out["decided_by"] = manifest.decided_by if manifest else None
    out["decided_at"] = manifest.decided_at if manifest else None
    out["study_uid_out"] = manifest.study_uid_out if manifest else None
    return out
