"""Inbound quality control (task ``qc``) and destination preflight (task ``preflight``).

``run_qc`` picks the protocol a study matches (``configs/protocols.yaml``) and reports protocol
deviations (warnings by default) and completeness problems of every image series (missing
slices, truncated or undecodable pixels: blocking by default).  ``preflight`` checks a study
against one destination's limits.  Both are pure: no network, CPU work to run in an executor.
Messages carry codes, counts, numbers and UIDs only (never descriptions or patient data).
"""

from __future__ import annotations

from dxai.actors.inbound.findings import TaskReport, report_of
from dxai.actors.inbound.qc_completeness import check_geometry, check_numbers
from dxai.actors.inbound.qc_findings import Emitter
from dxai.actors.inbound.qc_geometry import Stack
from dxai.actors.inbound.qc_pixels import check_pixels
from dxai.actors.inbound.qc_preflight import preflight
from dxai.actors.inbound.qc_protocol_checks import check_protocol
from dxai.actors.inbound.qc_protocols import ProtocolLibrary, load_protocols
from dxai.actors.inbound.qc_values import is_image
from dxai.actors.inbound.study import StudyView
from dxai.configs.schema.qc import QC_CODES, QcConfig

__all__ = ["TASK", "ProtocolLibrary", "load_protocols", "preflight", "run_qc"]

TASK = "qc"


def run_qc(study: StudyView, config: QcConfig, protocols: ProtocolLibrary) -> TaskReport:
    """Quality control of ``study`` under the protocol it matches (its name in ``detail``).

    ``counts``: series, image_series, instances, loaded, decoded, primary_series.
    """
    if not config.enabled:
        return TaskReport(TASK, "skipped", detail="qc disabled")
    out = Emitter(TASK, QC_CODES, config.severities)
    instances = sum(len(s.instances) for s in study.series)
    if instances == 0:
        out.emit("qc.empty_study", f"study {study.study_uid}: no instances received")
        return report_of(TASK, out.findings, "protocol=none", series=0, instances=0)
    stacks: dict[str, list[Stack]] = {}
    counts = {"series": len(study.series), "instances": instances, "image_series": 0}
    counts.update(loaded=0, decoded=0, primary_series=0)
    for series in study.series:
        if not any(is_image(r.header) for r in series.instances):
            continue
        counts["image_series"] += 1
        geometry = check_geometry(series, config, out)
        stacks[series.series_uid] = geometry.stacks
        check_numbers(series, geometry, out)
        tally = check_pixels(series, config, out)
        counts["loaded"] += tally.loaded
        counts["decoded"] += tally.decoded
    chosen = protocols.select(study)
    if chosen is None:
        out.emit("qc.no_protocol", f"study {study.study_uid}: no protocol matches, no fallback")
        return report_of(TASK, out.findings, "protocol=none", **counts)
    name, protocol = chosen
    phases = protocols.definitions.phases
    counts["primary_series"] = check_protocol(study, name, protocol, phases, stacks, out)
    return report_of(TASK, out.findings, f"protocol={name}", **counts)
