"""Named sources and destinations: the only places an event may fetch from or send to.

``sources`` and ``destinations`` (``configs/schema/services.py`` specs) are keyed by a route name.
The legacy single-endpoint keys stay as the route called ``default``: ``source_dicomweb`` is the
``default`` source, ``destination_dicomweb`` (else ``destination_dimse``, else, in embedded mode,
the results folder) the ``default`` destination.  Naming ``default`` both ways is an error.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import StringConstraints

from dxai.configs.schema.services import (
    DestinationSpec,
    DicomWebDestinationSpec,
    DicomWebEndpoint,
    DicomWebSourceSpec,
    DimseDestinationSpec,
    DimseEndpoint,
    DimseSourceSpec,
    FolderDestinationSpec,
    SourceSpec,
)

DEFAULT_ROUTE = "default"
RouteName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


def merged_sources(
    sources: Mapping[str, SourceSpec], legacy: DicomWebEndpoint | None
) -> dict[str, SourceSpec]:
    """``sources`` plus ``source_dicomweb`` as the ``default`` route."""
    out: dict[str, SourceSpec] = dict(sources)
    if legacy is not None:
        out[DEFAULT_ROUTE] = DicomWebSourceSpec(kind="dicomweb", **legacy.model_dump())
    return out


def merged_destinations(
    destinations: Mapping[str, DestinationSpec],
    dicomweb: DicomWebEndpoint | None,
    dimse: DimseEndpoint | None,
    folder: Path | None,
) -> dict[str, DestinationSpec]:
    """``destinations`` plus the legacy destination (or ``folder``) as the ``default`` route."""
    out: dict[str, DestinationSpec] = dict(destinations)
    if dicomweb is not None:
        out[DEFAULT_ROUTE] = DicomWebDestinationSpec(kind="dicomweb", **dicomweb.model_dump())
    elif dimse is not None:
        out[DEFAULT_ROUTE] = DimseDestinationSpec(kind="dimse", **dimse.model_dump())
    elif folder is not None and DEFAULT_ROUTE not in out:
        out[DEFAULT_ROUTE] = FolderDestinationSpec(kind="folder", path=str(folder))
    return out


def default_conflicts(
    sources: Mapping[str, SourceSpec],
    destinations: Mapping[str, DestinationSpec],
    legacy_source: bool,
    legacy_destination: bool,
) -> list[str]:
    """Problems where a legacy key and a ``default`` route both say the same thing."""
    problems = []
    if legacy_source and DEFAULT_ROUTE in sources:
        problems.append("sources.default: source_dicomweb is already the default source")
    if legacy_destination and DEFAULT_ROUTE in destinations:
        problems.append(
            "destinations.default: destination_dicomweb/destination_dimse is already the default"
        )
    return problems


def move_problems(sources: Mapping[str, SourceSpec], landing_port: int) -> list[str]:
    """Embedded mode: a C-MOVE source needs its own receiving port, not the landing zone's."""
    problems = []
    for name, spec in sorted(sources.items()):
        if not isinstance(spec, DimseSourceSpec) or spec.method != "c-move":
            continue
        key = f"sources.{name}.move_destination_port"
        if spec.move_destination_port is None:
            problems.append(f"{key}: required for c-move in embedded mode")
        elif spec.move_destination_port == landing_port:
            problems.append(f"{key}: is embedded.dicom_port (the landing zone's)")
    return problems


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
