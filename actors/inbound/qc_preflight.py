"""Preflight (task ``preflight``): can this study go to this destination as it is?

* sizes: the study's and each instance's bytes (after the decompression we would do) against
  ``max_study_bytes`` / ``max_instance_bytes`` (blocking);
* transfer syntaxes: an instance in a syntax the destination does not accept is decompressed to
  Explicit (else Implicit) VR Little Endian when the destination accepts that, the target
  ``can_transcode`` and the source is native or lossless: a ``preflight.transcode`` warning says
  so.  Lossy data not accepted is blocking (``preflight.lossy_not_accepted``) unless the target
  sets ``allow_lossy_decompression``: decompressed lossy pixels reach the receiver in a syntax it
  reads as original quality, which is not what it asked for.  Anything else not accepted is
  ``preflight.transfer_syntax_not_accepted`` (blocking);
* required attributes absent or empty on any instance: ``preflight.missing_attribute``
  (blocking), one finding per keyword.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from pydicom import uid

from dxai.actors.inbound.findings import TaskReport, report_of
from dxai.actors.inbound.qc_findings import Emitter
from dxai.actors.inbound.qc_pixels import NATIVE_SYNTAXES, expected_pixel_bytes
from dxai.actors.inbound.qc_values import is_image, raw
from dxai.actors.inbound.study import InstanceRef, StudyView
from dxai.actors.pixels.codec import LOSSLESS, LOSSY_METHOD
from dxai.configs.schema.qc import PREFLIGHT_CODES, PreflightTarget

TASK = "preflight"
#: the native syntaxes we decompress to, in order of preference.
TRANSCODE_TARGETS = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian)


@dataclass(frozen=True)
class SyntaxPlan:
    """What happens to instances in one syntax: ``ok``, ``transcode``, ``lossy``, ``refused``."""

    outcome: str
    source: str
    target: str = ""


def preflight(study: StudyView, target: PreflightTarget) -> TaskReport:
    """Check ``study`` against ``target``'s limits; ``counts``: instances, transcoded."""
    out = Emitter(TASK, PREFLIGHT_CODES, target.severities)
    refs = [r for s in study.series for r in s.instances]
    groups: dict[SyntaxPlan, list[InstanceRef]] = defaultdict(list)
    for ref in refs:
        groups[plan_for(ref.transfer_syntax, target)].append(ref)
    transcoded = [r for p, members in groups.items() if p.outcome == "transcode" for r in members]
    moved = {r.sop_uid for r in transcoded}
    sizes = {r.sop_uid: _size_after(r, r.sop_uid in moved) for r in refs}
    _sizes(study, refs, sizes, target, out)
    _syntaxes(groups, target, out)
    _attributes(refs, target, out)
    detail = f"{len(refs)} instances, {sum(sizes.values())} bytes after transcoding"
    return report_of(TASK, out.findings, detail, instances=len(refs), transcoded=len(moved))


def plan_for(syntax: str, target: PreflightTarget) -> SyntaxPlan:
    """How an instance in ``syntax`` reaches ``target`` (see the module's docstring)."""
    accepted = target.accepted_transfer_syntaxes
    if not accepted or syntax in accepted:
        return SyntaxPlan("ok", syntax)
    to = next((t for t in TRANSCODE_TARGETS if t in accepted), "")
    if not target.can_transcode or not to:
        return SyntaxPlan("refused", syntax)
    if _lossy(syntax):
        outcome = "transcode" if target.allow_lossy_decompression else "lossy"
        return SyntaxPlan(outcome, syntax, to if outcome == "transcode" else "")
    if syntax in NATIVE_SYNTAXES or syntax in LOSSLESS or syntax == uid.RLELossless:
        return SyntaxPlan("transcode", syntax, to)
    return SyntaxPlan("refused", syntax)


def _lossy(syntax: str) -> bool:
    """A lossy syntax: the codec's list, or any other compressed syntax not named lossless."""
    if syntax in LOSSY_METHOD:
        return True
    known = uid.UID(syntax)
    return (
        known.is_transfer_syntax
        and known.is_compressed
        and known not in LOSSLESS
        and known != uid.RLELossless
        and "Lossless" not in known.name
    )


def _size_after(ref: InstanceRef, transcoded: bool) -> int:
    """Bytes the instance will take: decompressed pixels replace compressed ones."""
    if not transcoded or not is_image(ref.header):
        return ref.size_bytes
    return max(ref.size_bytes, expected_pixel_bytes(ref.header) or 0)


def _sizes(
    study: StudyView,
    refs: list[InstanceRef],
    sizes: dict[str, int],
    target: PreflightTarget,
    out: Emitter,
) -> None:
    total = sum(sizes.values())
    if target.max_study_bytes is not None and total > target.max_study_bytes:
        out.emit(
            "preflight.study_too_large",
            f"study {study.study_uid}: {total} bytes over the limit {target.max_study_bytes}",
            value=float(total),
            unit="By",
        )
    limit = target.max_instance_bytes
    big = [r for r in refs if limit is not None and sizes[r.sop_uid] > limit]
    if big:
        worst = max(sizes[r.sop_uid] for r in big)
        out.emit(
            "preflight.instance_too_large",
            f"{len(big)} instances over the limit {limit} bytes (largest {worst})",
            sop_uids=(r.sop_uid for r in big),
            value=float(worst),
            unit="By",
        )


def _name(syntax: str) -> str:
    known = uid.UID(syntax)
    return known.name if known.is_transfer_syntax else syntax


_OUTCOME_CODES = {
    "transcode": "preflight.transcode",
    "lossy": "preflight.lossy_not_accepted",
    "refused": "preflight.transfer_syntax_not_accepted",
}


def _syntaxes(
    groups: dict[SyntaxPlan, list[InstanceRef]], target: PreflightTarget, out: Emitter
) -> None:
    for plan, members in groups.items():
        if plan.outcome not in _OUTCOME_CODES:
            continue
        count = f"{len(members)} instances in {_name(plan.source)}"
        if plan.outcome == "transcode":
            verb = "converted" if plan.source in NATIVE_SYNTAXES else "decompressed"
            what = f"{count} will be {verb} to {_name(plan.target)} (not accepted as sent)"
        elif plan.outcome == "lossy":
            what = (
                f"{count}: lossy and not accepted; decompressing would present lossy pixels "
                "as original quality"
            )
        else:
            why = "transcoding is off" if not target.can_transcode else "no native syntax accepted"
            what = f"{count}: not accepted and not transcodable ({why})"
        out.emit(
            _OUTCOME_CODES[plan.outcome],
            what,
            sop_uids=(r.sop_uid for r in members),
            value=float(len(members)),
            unit="{instance}",
        )


def _empty(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, str | bytes):
        return value.strip() == ""
    try:
        return len(value) == 0  # type: ignore[arg-type]
    except TypeError:
        return str(value).strip() == ""


def _attributes(refs: list[InstanceRef], target: PreflightTarget, out: Emitter) -> None:
    for keyword in target.required_attributes:
        lacking = [r for r in refs if _empty(raw(r.header, keyword))]
        if lacking:
            out.emit(
                "preflight.missing_attribute",
                f"{len(lacking)} of {len(refs)} instances lack {keyword}",
                sop_uids=(r.sop_uid for r in lacking),
                value=float(len(lacking)),
                unit="{instance}",
            )
