"""Files in, files out: the per-instance pipeline's outcomes written to a folder, and reported.

An output is written only when its instance passed (atomically: complete or absent, never
partial).  An instance held by the pixel step alone (its header is clean) is written under
``DST/.held/`` for a reviewer; one whose header verify found PHI is not written at all.  The
CLI's writes are atomic but not fsynced one by one (a run is repeated after a crash, and an fsync
per file would cost more than the de-identification); the daemon's destinations are durable.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dxai.actors.deid.engine import Deidentifier
from dxai.actors.outbound.instance import InstancePipeline
from dxai.actors.outbound.outcome import InstanceOutcome
from dxai.configs.atomic import write_bytes_atomic

HELD_DIR = ".held"
#: An instance status as the file report words it.
FILE_STATUS = {"passed": "ok", "held": "held", "failed": "failed", "skipped": "skipped"}


@dataclass
class FileReport:
    """The outcome for one input file (JSON-ready through :meth:`as_dict`; no PHI)."""

    src: str
    dst: str | None = None
    status: str = "failed"  # ok, held, failed, skipped
    reason: str = ""
    actions: dict[str, int] = field(default_factory=dict)
    defaults: dict[str, str] = field(default_factory=dict)
    verify: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    sop_instance_uid: str | None = None
    study_instance_uid: str | None = None
    pixels: dict[str, Any] | None = None
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """The report as a plain dictionary."""
        return asdict(self)


def held_path(dst: Path, root: Path) -> Path:
    """Where the output of a pixel-held instance goes: ``root/.held/<dst relative to root>``."""
    try:
        return root / HELD_DIR / dst.relative_to(root)
    except ValueError:
        return dst.parent / HELD_DIR / dst.name


def write_outcome(outcome: InstanceOutcome, dst: Path, held: Path) -> str | None:
    """Write what may be written: a passed output to ``dst``, a pixel-held one to ``held``."""
    if outcome.status == "passed" and outcome.data is not None:
        write_bytes_atomic(dst, outcome.data, durable=False)
        return str(dst)
    if outcome.status == "held" and outcome.data is not None:
        write_bytes_atomic(held, outcome.data, durable=False)
        return str(held)
    return None


def file_report(label: str, outcome: InstanceOutcome, dst: str | None, wall_s: float) -> FileReport:
    """The report entry of one file from its outcome."""
    header = outcome.header
    return FileReport(
        src=label,
        dst=dst,
        status=FILE_STATUS[outcome.status],
        reason=outcome.reason,
        actions=dict(header.actions) if header else {},
        defaults=dict(header.defaults) if header else {},
        verify=dict(header.verify) if header else {},
        errors=list(outcome.errors),
        sop_instance_uid=outcome.sop_uid_out,
        study_instance_uid=outcome.study_uid_out,
        pixels=outcome.pixel_report,
        duration_s=round(wall_s, 6),
    )


def deidentify_file(
    src: Path, dst: Path, deidentifier: Deidentifier, *, label: str | None = None
) -> FileReport:
    """Header-only de-identification of one file through the per-instance pipeline.

    Never raises for bad input and never leaves a partial file; ``dxai deid`` without pixels.
    """
    start = time.perf_counter()
    outcome = InstancePipeline(deidentifier).process(src)
    written = write_outcome(outcome, dst, held_path(dst, dst.parent))
    return file_report(label or src.name, outcome, written, time.perf_counter() - start)
