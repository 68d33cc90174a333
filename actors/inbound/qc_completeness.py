"""Completeness of one image series: slice gaps, positions, orientation, numbering, spacing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from dxai.actors.inbound.qc_findings import Emitter, mm
from dxai.actors.inbound.qc_geometry import Level, Slice, Stack, stacks_of
from dxai.actors.inbound.qc_values import integer
from dxai.actors.inbound.study import SeriesView
from dxai.configs.schema.qc import QcConfig

#: gaps described one by one in a message; the rest are counted.
MAX_GAPS_SHOWN = 3


@dataclass
class SeriesGeometry:
    """What the geometry checks learnt of a series, for the checks that follow."""

    stacks: list[Stack]
    explained_numbers: set[int] = field(default_factory=set)
    incomplete_levels: bool = False


def check_geometry(series: SeriesView, config: QcConfig, out: Emitter) -> SeriesGeometry:
    """Orientation, level multiplicity, gaps and spacing of every stack of ``series``."""
    stacks = stacks_of(series, config.orientation_tolerance_deg, config.position_tolerance_mm)
    result = SeriesGeometry(stacks)
    _orientation(series.series_uid, stacks, out)
    for stack in stacks:
        if len(stack.slices) < 2:
            continue
        _uniform(series.series_uid, stack, config, out)
        result.incomplete_levels |= _multiplicity(series.series_uid, stack, out)
        result.explained_numbers |= _gaps(series.series_uid, stack, config, out)
        _irregular(series.series_uid, stack, config, out)
    return result


def _orientation(series_uid: str, stacks: list[Stack], out: Emitter) -> None:
    """Single slices whose orientation differs from a main stack of 3 or more slices.

    Several stacks of 2+ slices each (a 3-plane series, two obliques) are separate stacks, each
    checked on its own, not an inconsistency.
    """
    if len(stacks) < 2 or len(stacks[0].slices) < 3:
        return
    strays = [s for stack in stacks[1:] if len(stack.slices) == 1 for s in stack.slices]
    if strays:
        out.emit(
            "qc.inconsistent_orientation",
            f"series {series_uid}: {len(strays)} of {sum(len(s.slices) for s in stacks)} slices "
            f"differ in orientation from the main stack of {len(stacks[0].slices)}",
            series_uid,
            (s.sop_uid for s in strays),
            value=float(len(strays)),
            unit="{slice}",
        )


def _odd_ones(slices: tuple[Slice, ...], key: str) -> tuple[object, list[Slice]]:
    values = Counter(getattr(s, key) for s in slices)
    common = values.most_common(1)[0][0]
    return common, [s for s in slices if getattr(s, key) != common]


def _uniform(series_uid: str, stack: Stack, config: QcConfig, out: Emitter) -> None:
    """Pixel spacing and matrix size the same on every slice of the stack."""
    spacings = [s.pixel_spacing for s in stack.slices if len(s.pixel_spacing) == 2]
    if spacings:
        ref = Counter(spacings).most_common(1)[0][0]
        tol = config.pixel_spacing_tolerance_mm
        odd = [
            s
            for s in stack.slices
            if len(s.pixel_spacing) == 2
            and max(abs(a - b) for a, b in zip(s.pixel_spacing, ref, strict=True)) > tol
        ]
        if odd:
            out.emit(
                "qc.inconsistent_pixel_spacing",
                f"series {series_uid}: {len(odd)} slices with a pixel spacing other than "
                f"{mm(ref[0])} x {mm(ref[1])} mm",
                series_uid,
                (s.sop_uid for s in odd),
            )
    dims, odd_dims = _odd_ones(stack.slices, "dims")
    if odd_dims:
        out.emit(
            "qc.inconsistent_dimensions",
            f"series {series_uid}: {len(odd_dims)} slices with a matrix other than {dims}",
            series_uid,
            (s.sop_uid for s in odd_dims),
        )


def _multiplicity(series_uid: str, stack: Stack, out: Emitter) -> bool:
    """Levels holding more or fewer instances than most; True when some hold fewer."""
    counts = Counter(len(level.slices) for level in stack.levels)
    usual = counts.most_common(1)[0][0]
    more = [level for level in stack.levels if len(level.slices) > usual]
    fewer = [level for level in stack.levels if len(level.slices) < usual]
    if more:
        extra = [s.sop_uid for level in more for s in level.slices[usual:]]
        out.emit(
            "qc.duplicate_position",
            f"series {series_uid}: {len(more)} positions hold more than {usual} instance(s) "
            f"({len(extra)} extra)",
            series_uid,
            extra,
            value=float(len(extra)),
            unit="{instance}",
        )
    if fewer and usual > 1:
        missing = sum(usual - len(level.slices) for level in fewer)
        out.emit(
            "qc.missing_at_position",
            f"series {series_uid}: {len(fewer)} positions hold fewer than the {usual} "
            f"instances of the others ({missing} missing)",
            series_uid,
            (s.sop_uid for level in fewer for s in level.slices),
            value=float(missing),
            unit="{instance}",
        )
    return bool(fewer and usual > 1)


def _numbers(level: Level) -> list[int]:
    return [s.number for s in level.slices if s.number is not None]


def _gaps(series_uid: str, stack: Stack, config: QcConfig, out: Emitter) -> set[int]:
    """Steps over ``gap_factor`` spacings; returns the InstanceNumbers the gaps explain."""
    spacing = stack.spacing_mm()
    if spacing is None or len(stack.levels) < 3 or spacing <= 0:
        return set()
    gaps: list[tuple[Level, Level, int]] = []
    for a, b in zip(stack.levels, stack.levels[1:], strict=False):
        step = b.position_mm - a.position_mm
        if step > config.gap_factor * spacing:
            gaps.append((a, b, max(1, round(step / spacing) - 1)))
    if not gaps:
        return set()
    total = sum(n for _, _, n in gaps)
    shown = "; ".join(
        f"{n} missing slice{'s' if n > 1 else ''} between {stack.label(a)} and {stack.label(b)} mm"
        for a, b, n in gaps[:MAX_GAPS_SHOWN]
    )
    more = f"; {len(gaps) - MAX_GAPS_SHOWN} more gaps" if len(gaps) > MAX_GAPS_SHOWN else ""
    out.emit(
        "qc.slice_gap",
        f"series {series_uid}: {shown}{more} (spacing {mm(spacing)} mm)",
        series_uid,
        (s.sop_uid for a, b, _ in gaps for s in (a.slices[0], b.slices[0])),
        value=float(total),
        unit="{slice}",
    )
    explained: set[int] = set()
    for a, b, _ in gaps:
        ends = _numbers(a) + _numbers(b)
        if ends:
            explained |= set(range(min(ends) + 1, max(ends)))
    return explained


def _irregular(series_uid: str, stack: Stack, config: QcConfig, out: Emitter) -> None:
    """Steps off the typical spacing by more than the tolerance (gaps excepted)."""
    spacing = stack.spacing_mm()
    if spacing is None or len(stack.levels) < 3 or spacing <= 0:
        return
    tolerance = max(config.irregular_spacing_fraction * spacing, config.position_tolerance_mm)
    odd = [
        (abs(step - spacing), b)
        for step, b in zip(stack.steps(), stack.levels[1:], strict=True)
        if abs(step - spacing) > tolerance and step <= config.gap_factor * spacing
    ]
    if odd:
        worst = max(d for d, _ in odd)
        out.emit(
            "qc.irregular_slice_spacing",
            f"series {series_uid}: {len(odd)} slice steps differ from the spacing "
            f"{mm(spacing)} mm by up to {mm(worst)} mm",
            series_uid,
            (level.slices[0].sop_uid for _, level in odd),
            value=worst,
            unit="mm",
        )


def check_numbers(series: SeriesView, geometry: SeriesGeometry, out: Emitter) -> None:
    """InstanceNumbers missing from the series' sequence and not explained by a slice gap."""
    if geometry.incomplete_levels:
        return
    by_number = {
        n: r.sop_uid
        for r in series.instances
        if (n := integer(r.header, "InstanceNumber")) is not None
    }
    numbers = sorted(by_number)
    if len(numbers) < 2:
        return
    present = set(numbers)
    missing = [n for n in range(numbers[0], numbers[-1] + 1) if n not in present]
    missing = [n for n in missing if n not in geometry.explained_numbers]
    if not missing:
        return
    runs = _runs(missing)
    out.emit(
        "qc.missing_instance_number",
        f"series {series.series_uid}: {len(missing)} instance number(s) missing between "
        f"{numbers[0]} and {numbers[-1]} ({', '.join(runs[:5])}{', ...' if len(runs) > 5 else ''})",
        series.series_uid,
        (by_number[n] for m in missing for n in (m - 1, m + 1) if n in by_number),
        value=float(len(missing)),
        unit="{instance}",
    )


def _runs(numbers: list[int]) -> list[str]:
    """``[3, 4, 5, 9]`` -> ``["3-5", "9"]``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return [f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs]
