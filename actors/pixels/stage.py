"""Pixel redaction over files already header-de-identified (the ``dxai deid --pixels`` stage).

PHI values are read from each ORIGINAL file; the de-identified output is redacted in place
(atomically).  ``auto`` follows the risk policy: ``sample`` series scan a few instances first
and every instance only when PHI text was found; held outputs move under ``DST/.held/``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from dxai.actors.pixels.phi import phi_values
from dxai.actors.pixels.redactor import PixelRedactor
from dxai.actors.pixels.report import PixelReport

PixelRequest = Literal["auto", "always"]
HELD_DIR = ".held"


@dataclass(frozen=True)
class PixelJob:
    """One de-identified output and the original it came from."""

    original: Path
    output: Path
    label: str


def _header(path: Path) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True, force=True)


def _plan(
    jobs: Sequence[PixelJob], redactor: PixelRedactor, request: PixelRequest
) -> list[tuple[list[PixelJob], list[PixelJob]]]:
    """Per series: (instances scanned first, instances scanned only if PHI text was found)."""
    series: dict[str, list[tuple[PixelJob, Dataset]]] = defaultdict(list)
    for job in jobs:
        head = _header(job.original)
        series[str(head.get("SeriesInstanceUID", job.label))].append((job, head))
    plans: list[tuple[list[PixelJob], list[PixelJob]]] = []
    for members in series.values():
        head = members[0][1]
        action = redactor.policy.scan_action(
            str(head.get("Modality", "")), str(head.get("SOPClassUID", ""))
        )
        ordered = [j for j, _ in sorted(members, key=lambda m: _number(m[1]))]
        if request == "always" or action == "always":
            plans.append((ordered, []))
        elif action == "sample":
            picks = set(np.linspace(0, len(ordered) - 1, redactor.policy.sample_count).round())
            first = [j for i, j in enumerate(ordered) if i in picks]
            plans.append((first, [j for j in ordered if j not in first]))
    return plans


def _number(head: Dataset) -> int:
    try:
        return int(head.get("InstanceNumber", 0) or 0)
    except (TypeError, ValueError):
        return 0


def redact_job(job: PixelJob, redactor: PixelRedactor) -> PixelReport:
    """Redact one output file in place (atomic replace); held files move under ``.held``."""
    values = phi_values(_header(job.original))
    ds = pydicom.dcmread(job.output)
    report = redactor.redact_dataset(ds, values, "always")
    if report.status in ("redacted", "clean", "held"):
        tmp = job.output.with_name(job.output.name + ".pixtmp")
        ds.save_as(tmp, enforce_file_format=True)
        tmp.replace(job.output)
    if report.status == "held":
        held = job.output.parent / HELD_DIR / job.output.name
        held.parent.mkdir(parents=True, exist_ok=True)
        job.output.replace(held)
    return report


def redact_outputs(
    jobs: Sequence[PixelJob], redactor: PixelRedactor, request: PixelRequest = "auto"
) -> list[dict[str, Any]]:
    """Run the pixel stage over ``jobs``; one JSON-ready report per instance scanned."""
    out: list[dict[str, Any]] = []
    for first, rest in _plan(jobs, redactor, request):
        reports = [(job, redact_job(job, redactor)) for job in first]
        if any(rep.boxes for _, rep in reports):
            reports += [(job, redact_job(job, redactor)) for job in rest]
        out.extend({"file": job.label, **rep.as_dict()} for job, rep in reports)
    return out


def summarise(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Totals for the CLI: boxes found / redacted, instances held, seconds per instance."""
    seconds = [float(r["seconds"]) for r in reports]
    return {
        "instances_scanned": len(reports),
        "text_regions": sum(int(r["text_regions"]) for r in reports),
        "boxes_found": sum(int(r["phi_regions"]) for r in reports),
        "boxes_redacted": sum(int(r["boxes_redacted"]) for r in reports),
        "held": sum(r["status"] == "held" for r in reports),
        "failed": sum(r["status"] == "failed" for r in reports),
        "s_per_instance": round(sum(seconds) / len(seconds), 4) if seconds else 0.0,
    }
