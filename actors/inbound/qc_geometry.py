"""Slice geometry of an image series: stacks of parallel slices and their positions.

A slice's position is its ImagePositionPatient projected on the slice normal (the cross product
of the ImageOrientationPatient row and column vectors).  Slices are grouped into stacks of one
orientation; within a stack, positions closer than a tolerance form one *level* (a multi-echo,
multi-phase or perfusion series holds several instances per level).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from dxai.actors.inbound.qc_values import floats, frames, integer, is_localizer, number
from dxai.actors.inbound.study import InstanceRef, SeriesView

Vector = tuple[float, float, float]


@dataclass(frozen=True)
class Slice:
    """One single-frame image with usable geometry."""

    sop_uid: str
    number: int | None
    normal: Vector | None  # None: no usable ImageOrientationPatient
    position_patient: Vector
    pixel_spacing: tuple[float, ...]
    dims: tuple[int, int]
    thickness_mm: float | None

    def along(self, normal: Vector) -> float:
        """Its position projected on ``normal`` (mm)."""
        return float(np.dot(self.position_patient, normal))


@dataclass(frozen=True)
class Level:
    """The slices of a stack at one position."""

    position_mm: float
    slices: tuple[Slice, ...]


@dataclass(frozen=True)
class Stack:
    """Parallel slices of one series, sorted into levels along the stack's normal."""

    normal: Vector
    levels: tuple[Level, ...]

    @property
    def slices(self) -> tuple[Slice, ...]:
        """Every slice of the stack, in position order."""
        return tuple(s for level in self.levels for s in level.slices)

    @property
    def axial(self) -> bool:
        """True when the slices are (nearly) axial: positions read as z."""
        return abs(self.normal[2]) > 0.9

    def label(self, level: Level) -> str:
        """A level's position for a message: ``z=-110.0`` (axial) or ``d=12.5`` (along normal)."""
        if self.axial:
            return f"z={level.slices[0].position_patient[2]:.1f}"
        return f"d={level.position_mm:.1f}"

    def steps(self) -> list[float]:
        """Distances between consecutive levels (mm)."""
        positions = [level.position_mm for level in self.levels]
        return [b - a for a, b in pairwise(positions)]

    def spacing_mm(self) -> float | None:
        """The typical step: the lower median of the steps (a gap does not inflate it)."""
        steps = sorted(self.steps())
        return steps[(len(steps) - 1) // 2] if steps else None


def _unit(vector: tuple[float, ...]) -> Vector | None:
    norm = math.sqrt(sum(v * v for v in vector))
    if not 0.5 < norm < 1.5:
        return None
    return (vector[0] / norm, vector[1] / norm, vector[2] / norm)


def _normal(orientation: tuple[float, ...]) -> Vector | None:
    if len(orientation) != 6:
        return None
    row, col = _unit(orientation[:3]), _unit(orientation[3:])
    if row is None or col is None:
        return None
    return _unit(tuple(float(v) for v in np.cross(row, col)))


def slice_of(ref: InstanceRef) -> Slice | None:
    """The instance as a :class:`Slice`; None for multi-frame, localizer or no geometry."""
    header = ref.header
    if frames(header) != 1 or is_localizer(header):
        return None
    orientation, position = (
        floats(header, "ImageOrientationPatient"),
        floats(header, "ImagePositionPatient"),
    )
    if len(position) != 3:
        return None
    normal = _normal(orientation)
    return Slice(
        sop_uid=ref.sop_uid,
        number=integer(header, "InstanceNumber"),
        normal=normal,
        position_patient=(position[0], position[1], position[2]),
        pixel_spacing=floats(header, "PixelSpacing"),
        dims=(integer(header, "Rows") or 0, integer(header, "Columns") or 0),
        thickness_mm=number(header, "SliceThickness"),
    )


def _levels(slices: list[Slice], normal: Vector, tolerance_mm: float) -> tuple[Level, ...]:
    ordered = sorted(slices, key=lambda s: s.along(normal))
    groups: list[list[Slice]] = []
    for item in ordered:
        if groups and item.along(normal) - groups[-1][0].along(normal) <= tolerance_mm:
            groups[-1].append(item)
        else:
            groups.append([item])
    return tuple(Level(float(np.mean([s.along(normal) for s in g])), tuple(g)) for g in groups)


def stacks_of(
    series: SeriesView, tolerance_deg: float, position_tolerance_mm: float
) -> list[Stack]:
    """The series' stacks, largest first: slices whose normals are parallel within tolerance
    (either sign) share a stack, projected on the normal of the stack's first slice; a slice
    with a position but no usable orientation joins the largest stack."""
    limit = math.cos(math.radians(tolerance_deg))
    groups: list[tuple[Vector, list[Slice]]] = []
    loose: list[Slice] = []
    for ref in series.instances:
        item = slice_of(ref)
        if item is None:
            continue
        if item.normal is None:
            loose.append(item)
            continue
        for normal, members in groups:
            if abs(float(np.dot(normal, item.normal))) >= limit:
                members.append(item)
                break
        else:
            groups.append((item.normal, [item]))
    groups.sort(key=lambda g: -len(g[1]))
    if groups:
        groups[0][1].extend(loose)  # a slice without orientation joins the main stack
    return [Stack(n, _levels(m, n, position_tolerance_mm)) for n, m in groups]
