"""Protocol conformance: slice thickness, kVp, contrast phase, series count, contiguity.

The checks read the *primary* series: images of the protocol's modalities that are original
(ImageType ORIGINAL or absent), not localizers and not secondary captures, so reformats, MIPs,
scouts and dose screens never count as deviations.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping

from dxai.actors.inbound.qc_findings import Emitter, mm
from dxai.actors.inbound.qc_geometry import Stack
from dxai.actors.inbound.qc_values import (
    has_word,
    image_type,
    is_image,
    is_localizer,
    is_secondary_capture,
    number,
    text,
    words,
)
from dxai.actors.inbound.study import InstanceRef, SeriesView, StudyView
from dxai.configs.schema.qc import PhaseKeywords, Protocol, ValueRange


def primary_images(series: SeriesView, protocol: Protocol) -> list[InstanceRef]:
    """The series' instances the protocol checks read (empty: not a primary series)."""
    modalities = protocol.match.modalities
    if modalities and series.modality not in modalities:
        return []
    return [
        r
        for r in series.instances
        if is_image(r.header)
        and not is_localizer(r.header)
        and not is_secondary_capture(r.header)
        and (image_type(r.header)[:1] or ("ORIGINAL",))[0] != "DERIVED"
    ]


def check_protocol(
    study: StudyView,
    name: str,
    protocol: Protocol,
    phases: PhaseKeywords,
    stacks: Mapping[str, list[Stack]],
    out: Emitter,
) -> int:
    """Run ``protocol``'s checks on ``study``; returns how many primary series it read."""
    checks = protocol.checks
    primary = {s.series_uid: imgs for s in study.series if (imgs := primary_images(s, protocol))}
    for series_uid, images in primary.items():
        if checks.slice_thickness_mm is not None:
            _range(series_uid, images, "SliceThickness", checks.slice_thickness_mm, out)
        if checks.kvp is not None:
            _range(series_uid, images, "KVP", checks.kvp, out)
        if checks.contiguous_slices:
            for stack in stacks.get(series_uid, []):
                _contiguity(series_uid, stack, out)
    _contrast(primary, checks.contrast_phase, phases, out)
    if len(primary) < checks.min_series:
        out.emit(
            "qc.too_few_series",
            f"protocol {name}: {len(primary)} primary image series, at least "
            f"{checks.min_series} expected",
            value=float(len(primary)),
            unit="{series}",
        )
    return len(primary)


_RANGE_WORDING = {
    "SliceThickness": ("qc.slice_thickness_out_of_range", "slice thickness", "mm", "mm"),
    "KVP": ("qc.kvp_out_of_range", "tube voltage", "kV", "kVp"),
}


def _bounds(allowed: ValueRange, shown: str) -> str:
    low = "-inf" if allowed.min is None else mm(allowed.min)
    high = "inf" if allowed.max is None else mm(allowed.max)
    return f"{low} to {high} {shown}"


def _range(
    series_uid: str, images: list[InstanceRef], keyword: str, allowed: ValueRange, out: Emitter
) -> None:
    """One finding when any image's ``keyword`` value lies outside ``allowed``."""
    values = [(r, v) for r in images if (v := number(r.header, keyword)) is not None]
    odd = [(r, v) for r, v in values if not allowed.contains(v)]
    if not odd:
        return
    code, what, unit, shown = _RANGE_WORDING[keyword]
    typical = Counter(v for _, v in odd).most_common(1)[0][0]
    out.emit(
        code,
        f"series {series_uid}: {what} {mm(typical)} {shown} outside {_bounds(allowed, shown)} "
        f"({len(odd)} of {len(values)} images)",
        series_uid,
        (r.sop_uid for r, _ in odd),
        value=typical,
        unit=unit,
    )


def _contiguity(series_uid: str, stack: Stack, out: Emitter) -> None:
    """Slices further apart than they are thick leave tissue unimaged."""
    spacing = stack.spacing_mm()
    thicknesses = [s.thickness_mm for s in stack.slices if s.thickness_mm]
    if spacing is None or not thicknesses:
        return
    thickness = statistics.median(thicknesses)
    if spacing > thickness * 1.05 + 0.01:
        out.emit(
            "qc.non_contiguous_slices",
            f"series {series_uid}: slice spacing {mm(spacing)} mm exceeds the slice thickness "
            f"{mm(thickness)} mm",
            series_uid,
            value=spacing,
            unit="mm",
        )


def series_phase(images: list[InstanceRef], phases: PhaseKeywords) -> str:
    """The series' contrast phase: a phase word of its SeriesDescription (arterial, venous,
    delayed, none, checked in that order), else ``contrast`` when ContrastBolusAgent or
    ContrastBolusRoute has a value, else ``unknown``."""
    header = images[0].header
    description = words(text(header, "SeriesDescription"))
    for phase in ("arterial", "venous", "delayed", "none"):
        if any(has_word(description, w) for w in getattr(phases, phase)):
            return phase
    if _has_contrast(images[:1]):
        return "contrast"
    return "unknown"


def _has_contrast(images: list[InstanceRef]) -> bool:
    keys = ("ContrastBolusAgent", "ContrastBolusRoute")
    return any(text(r.header, k) for r in images for k in keys)


def _contrast(
    primary: Mapping[str, list[InstanceRef]], expected: str, phases: PhaseKeywords, out: Emitter
) -> None:
    """``none``: no primary series may show contrast; a phase: at least one series in it."""
    if expected == "any" or not primary:
        return
    found = {uid: series_phase(images, phases) for uid, images in primary.items()}
    if expected == "none":
        for uid, images in primary.items():
            if found[uid] in ("arterial", "venous", "delayed") or _has_contrast(images):
                phase = found[uid]
                shown = f"{phase} phase" if phase != "none" else "contrast agent recorded"
                if phase in ("contrast", "unknown"):
                    shown = "contrast agent recorded"
                out.emit(
                    "qc.contrast_phase_mismatch",
                    f"series {uid}: {shown} where the protocol expects no contrast",
                    uid,
                    (images[0].sop_uid,),
                )
        return
    if not any(p == expected or p == "contrast" for p in found.values()):
        seen = ", ".join(sorted(set(found.values())))
        out.emit(
            "qc.contrast_phase_mismatch",
            f"no primary series in the {expected} phase (phases seen: {seen})",
        )
